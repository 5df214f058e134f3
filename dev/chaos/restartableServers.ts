import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { embeddedPostgresUrl } from '../embeddedPostgres/embeddedServer'
import { SupervisedProcess } from '../supervisor/supervisedProcess'
import { startDevServer, type DevServerEndpoint } from '../../cli/runtime/temporalServer'

/** A server the campaign owns and may crash: it can be killed and started again at the same address on the same data. */
export interface RestartableServer {
  readonly address: string
  /** SIGKILLs the server (no chance to flush or say goodbye) and starts it again on the same port and data. */
  restart(): Promise<void>
  stop(): Promise<void>
}

/** A restartable database and its URL. */
export interface RestartableDatabase extends RestartableServer {
  readonly url: string
}

/** A restartable Temporal dev server and its namespace. */
export interface RestartableTemporal extends RestartableServer {
  readonly namespace: string
}

/** A free TCP port on 127.0.0.1 (free now; the caller binds it next). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Polls until a PostgreSQL server at `url` answers a query; throws after `timeoutMs`. */
export async function waitForPostgres(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = 'no answer yet'
  for (;;) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 })
    client.on('error', () => undefined)
    try {
      await client.connect()
      await client.query('select 1')
      return
    } catch (error) {
      last = (error as Error).message
    } finally {
      await client.end().catch(() => undefined)
    }
    if (Date.now() > deadline) throw new Error(`PostgreSQL at ${url.replace(/:[^:@/]*@/, ':***@')} did not answer within ${timeoutMs} ms (${last})`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/**
 * Serves the PGlite in `dataDir` from a separate `annalist embedded-postgres` process on a Unix socket in a fresh
 * owner-only temp directory (removed by stop), so it can be SIGKILLed and started again on the same data directory
 * and socket, as a crashed database server would come back.
 */
export async function startEmbeddedDatabaseProcess(options: { dataDir: string; logPath: string; env?: NodeJS.ProcessEnv }): Promise<RestartableDatabase> {
  const socketDir = await mkdtemp(path.join(tmpdir(), 'annalist-pg-'))
  const url = embeddedPostgresUrl(socketDir)
  const server = new SupervisedProcess('embedded-postgres', ['embedded-postgres', '--data-dir', options.dataDir, '--socket-dir', socketDir], options.env ?? process.env, options.logPath, 100)
  const stop = async () => {
    await server.stop()
    await rm(socketDir, { recursive: true, force: true })
  }
  server.start()
  try {
    await waitForPostgres(url, 120_000)
  } catch (error) {
    await stop()
    throw error
  }
  return {
    address: socketDir,
    url,
    async restart() {
      const killed = server.kill('SIGKILL')
      if (killed === undefined) throw new Error('the embedded PostgreSQL process is not running')
      // The supervisor starts it again after its restart delay; wait for the new process to serve.
      const deadline = Date.now() + 30_000
      while (server.pid === undefined || server.pid === killed) {
        if (Date.now() > deadline) throw new Error('the embedded PostgreSQL process was not restarted within 30 s')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      await waitForPostgres(url, 120_000)
    },
    stop,
  }
}

/**
 * A Temporal dev server persisted in `dbFilename`: restart SIGKILLs it and starts it again on the same port and file,
 * so workers and clients see the frontend vanish and come back at the same address with all workflows intact.
 */
export async function startRestartableTemporal(options: { binaryPath: string; dbFilename: string; logFile: string }): Promise<RestartableTemporal> {
  let current: DevServerEndpoint = await startDevServer({ binaryPath: options.binaryPath, dbFilename: options.dbFilename, logFile: options.logFile })
  const port = current.port
  return {
    address: current.address,
    namespace: current.namespace,
    async restart() {
      process.kill(current.pid, 'SIGKILL')
      await current.stop()
      current = await startDevServer({ binaryPath: options.binaryPath, dbFilename: options.dbFilename, logFile: options.logFile, port, startTimeoutMs: 60_000 })
    },
    stop: () => current.stop(),
  }
}
