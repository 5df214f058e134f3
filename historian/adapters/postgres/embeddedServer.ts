import path from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { createPgConfig } from '@electric-sql/pglite/node-postgres'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import pg from 'pg'
import { lockDataDirectory } from './database'
import { runMigrations } from './migrate'

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
 * All connections share PGlite's single session: the socket server runs one connection's transaction at a time
 * (others wait until it ends), which also keeps the event log's global order; a client that disconnects mid-transaction
 * is rolled back. Advisory locks and LISTEN/NOTIFY do not work across connections here (see Database.notifiesAcrossConnections).
 */
export async function startEmbeddedPostgres(options: { dataDir: string; port?: number }): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir)
  const releaseLock = await lockDataDirectory(dataDir)
  let pglite: PGlite | undefined
  let server: PGLiteSocketServer | undefined
  const stop = async () => {
    await server?.stop().catch(() => undefined)
    await pglite?.close().catch(() => undefined)
    await releaseLock()
  }
  try {
    pglite = new PGlite(dataDir)
    await pglite.waitReady
    const pool = new pg.Pool({ ...createPgConfig(pglite), max: 1 })
    try {
      await runMigrations(pool)
    } finally {
      await pool.end()
    }
    server = new PGLiteSocketServer({ db: pglite, host: '127.0.0.1', port: options.port ?? 0, maxConnections: 32 })
    await server.start()
  } catch (error) {
    await stop()
    throw error
  }
  let closed = false
  return {
    url: `postgres://postgres:postgres@${server.getServerConn()}/postgres`,
    async close() {
      if (closed) return
      closed = true
      await stop()
    },
  }
}
