import { startEmbeddedPostgres } from './embeddedServer'
import { exitWhenSupervisorDies } from '../supervisor/supervisorWatchdog'

/**
 * `annalist embedded-postgres --data-dir D --port P` (hidden): serves the PGlite in D on 127.0.0.1:P until SIGINT/SIGTERM.
 * The fault campaign runs the embedded database in this separate process so it can SIGKILL it and start it again on the
 * same data directory and port, the way a database server crashes and comes back.
 */
export async function embeddedPostgresCommand(options: { dataDir: string; port: string }): Promise<void> {
  const port = Number(options.port)
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new RangeError(`--port must be a TCP port from 1 to 65535, got ${JSON.stringify(options.port)}`)
  const embedded = await startEmbeddedPostgres({ dataDir: options.dataDir, port })
  console.error(`embedded-postgres ${process.pid}: serving ${options.dataDir} at 127.0.0.1:${port}`)
  await new Promise<void>((resolve) => {
    const stop = () => resolve()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    exitWhenSupervisorDies(stop)
  })
  await embedded.close()
}
