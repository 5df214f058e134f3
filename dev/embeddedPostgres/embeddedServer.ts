import { createServer, type Server, type Socket } from 'node:net'
import path from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { createPgConfig } from '@electric-sql/pglite/node-postgres'
import { PGLiteSocketHandler } from '@electric-sql/pglite-socket'
import pg from 'pg'
import { createPrivateDirectory, lockDataDirectory, restrictToOwner } from '../../historian/adapters/postgres/database'
import { runMigrations } from '../../historian/adapters/postgres/migrate'
import { SessionQueue } from './sessionQueue'

/** A PGlite database served over the PostgreSQL wire protocol to other processes. */
export interface EmbeddedPostgres {
  /** `postgres://postgres:postgres@127.0.0.1:<port>/postgres`; PGlite ignores the credentials. */
  readonly url: string
  close(): Promise<void>
}

/**
 * Hosts one PGlite in `dataDir` (locked to this process) and serves it on 127.0.0.1 (`port` 0 or omitted: a free port),
 * so worker processes, which may be SIGKILLed, and the projector share the embedded database through ordinary `pg`
 * connections. Migrates once before serving.
 *
 * All connections share PGlite's single session through a SessionQueue: one connection's protocol exchange or
 * transaction at a time (others wait until it ends), which also keeps the event log's global order; a client that
 * disconnects mid-transaction is rolled back. Advisory locks and LISTEN/NOTIFY do not work across connections here (see Database.notifiesAcrossConnections).
 */
export async function startEmbeddedPostgres(options: { dataDir: string; port?: number }): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir)
  const created = await createPrivateDirectory(dataDir)
  const releaseLock = await lockDataDirectory(dataDir)
  let pglite: PGlite | undefined
  let server: Server | undefined
  const handlers = new Set<PGLiteSocketHandler>()
  const stop = async () => {
    await Promise.all([...handlers].map((handler) => handler.detach(true).catch(() => undefined)))
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
    await pglite?.close().catch(() => undefined)
    await releaseLock()
  }
  try {
    pglite = new PGlite(dataDir)
    await pglite.waitReady
    if (created) await restrictToOwner(dataDir)
    const pool = new pg.Pool({ ...createPgConfig(pglite), max: 1 })
    try {
      await runMigrations(pool)
    } finally {
      await pool.end()
    }
    server = await serve(new SessionQueue(pglite), handlers, options.port ?? 0)
  } catch (error) {
    await stop()
    throw error
  }
  let closed = false
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${(server.address() as { port: number }).port}/postgres`,
    async close() {
      if (closed) return
      closed = true
      await stop()
    },
  }
}

/** Serves each TCP connection with a pglite-socket protocol handler that shares the one session through `queue`. */
async function serve(queue: SessionQueue, handlers: Set<PGLiteSocketHandler>, port: number): Promise<Server> {
  const server = createServer((socket: Socket) => {
    // The handler only calls the queue interface SessionQueue implements; its declared type is a class the package does not export.
    const handler = new PGLiteSocketHandler({ queryQueue: queue as never, closeOnDetach: true })
    handlers.add(handler)
    const forget = () => handlers.delete(handler)
    handler.addEventListener('close', forget)
    handler.addEventListener('error', forget)
    handler.attach(socket).catch(() => socket.destroy())
  })
  server.maxConnections = 64
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  return server
}
