import { startEmbeddedPostgres } from './embeddedServer'
import { exitWhenSupervisorDies } from '../supervisor/supervisorWatchdog'

/**
 * `annalist-dev embedded-postgres --data-dir D --socket-dir S` (hidden): serves the PGlite in D on a Unix socket in the
 * owner-only directory S until SIGINT/SIGTERM. The fault campaign runs the embedded database in this separate process
 * so it can SIGKILL it and start it again on the same data directory and socket, the way a database server crashes and
 * comes back.
 */
export async function embeddedPostgresCommand(options: { dataDir: string; socketDir: string }): Promise<void> {
  const embedded = await startEmbeddedPostgres({ dataDir: options.dataDir, socketDir: options.socketDir })
  console.error(`embedded-postgres ${process.pid}: serving ${options.dataDir} at ${embedded.socketPath}`)
  await new Promise<void>((resolve) => {
    const stop = () => resolve()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    exitWhenSupervisorDies(stop)
  })
  await embedded.close()
}
