import { chmod, mkdtemp, rm, stat, unlink } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { createPgConfig } from '@electric-sql/pglite/node-postgres'
import { PGLiteSocketHandler } from '@electric-sql/pglite-socket'
import pg from 'pg'
import { createPrivateDirectory, lockDataDirectory, restrictToOwner } from '../../historian/adapters/postgres/database'
import { runMigrations } from '../../historian/adapters/postgres/migrate'
import { SessionQueue } from './sessionQueue'

/** A PGlite database served over the PostgreSQL wire protocol to other processes of the same user. */
export interface EmbeddedPostgres {
  /** `postgres://postgres@/postgres?host=<socket directory>&port=5432`: a Unix socket, as libpq and `pg` spell it. */
  readonly url: string
  /** The socket file, `<socket directory>/.s.PGSQL.5432`. */
  readonly socketPath: string
  close(): Promise<void>
}

/** The port number in the socket's file name (`.s.PGSQL.<port>`, as libpq expects); no TCP port is opened. */
const SOCKET_PORT = 5432
const SOCKET_FILE_NAME = `.s.PGSQL.${SOCKET_PORT}`
/** sun_path holds 108 bytes on Linux (104 on macOS), the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = 103

/** The `pg`/libpq URL of the embedded server whose socket is in `socketDir`. PGlite accepts any user and password. */
export function embeddedPostgresUrl(socketDir: string): string {
  return `postgres://postgres@/postgres?host=${encodeURIComponent(socketDir).replaceAll('%2F', '/')}&port=${SOCKET_PORT}`
}

/**
 * Hosts one PGlite in `dataDir` (locked to this process) and serves it on a Unix socket in an owner-only directory, so
 * worker processes, which may be SIGKILLed, and the projector share the embedded database through ordinary `pg`
 * connections, and no other local user can reach it: PGlite accepts any login (docs/security.md). The socket lives in
 * `socketDir` when given (created 0700 if missing, refused unless owner-only), otherwise in the 0700 data directory, or,
 * when that path is too long for a socket, in a fresh 0700 directory under the system temp directory, removed on
 * close. Migrates once before serving.
 *
 * All connections share PGlite's single session through a SessionQueue: one connection's protocol exchange or
 * transaction at a time (others wait until it ends), which also keeps the event log's global order; a client that
 * disconnects mid-transaction is rolled back. Advisory locks and LISTEN/NOTIFY do not work across connections here (see Database.notifiesAcrossConnections).
 */
export async function startEmbeddedPostgres(options: { dataDir: string; socketDir?: string }): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir)
  const created = await createPrivateDirectory(dataDir)
  const releaseLock = await lockDataDirectory(dataDir)
  let pglite: PGlite | undefined
  let server: Server | undefined
  let temporarySocketDir: string | undefined
  const handlers = new Set<PGLiteSocketHandler>()
  const stop = async () => {
    await Promise.all([...handlers].map((handler) => handler.detach(true).catch(() => undefined)))
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
    await pglite?.close().catch(() => undefined)
    if (temporarySocketDir) await rm(temporarySocketDir, { recursive: true, force: true })
    await releaseLock()
  }
  let socketDir: string
  try {
    if (options.socketDir !== undefined) socketDir = await privateSocketDirectory(options.socketDir)
    else if (fitsSocketPath(dataDir)) socketDir = dataDir
    else socketDir = temporarySocketDir = await mkdtemp(path.join(tmpdir(), 'annalist-pg-'))
    pglite = new PGlite(dataDir)
    await pglite.waitReady
    if (created) await restrictToOwner(dataDir)
    const pool = new pg.Pool({ ...createPgConfig(pglite), max: 1 })
    try {
      await runMigrations(pool)
    } finally {
      await pool.end()
    }
    server = await serve(new SessionQueue(pglite), handlers, path.join(socketDir, SOCKET_FILE_NAME))
  } catch (error) {
    await stop()
    throw error
  }
  let closed = false
  return {
    url: embeddedPostgresUrl(socketDir),
    socketPath: path.join(socketDir, SOCKET_FILE_NAME),
    async close() {
      if (closed) return
      closed = true
      await stop()
    },
  }
}

function fitsSocketPath(dir: string): boolean {
  return Buffer.byteLength(path.join(dir, SOCKET_FILE_NAME)) <= MAX_SOCKET_PATH_BYTES
}

/** `dir`, created 0700 if missing; an existing directory others may enter is refused, as is one too long for a socket. */
async function privateSocketDirectory(dir: string): Promise<string> {
  const resolved = path.resolve(dir)
  if (!fitsSocketPath(resolved)) throw new RangeError(`socket directory ${resolved} is too long for a Unix socket path (${MAX_SOCKET_PATH_BYTES} bytes at most)`)
  await createPrivateDirectory(resolved)
  const { mode, uid } = await stat(resolved)
  if ((mode & 0o077) !== 0 || (process.getuid !== undefined && uid !== process.getuid())) {
    throw new Error(`socket directory ${resolved} must be owned by this user and private (mode 0700), not ${(mode & 0o777).toString(8)}`)
  }
  return resolved
}

/**
 * Serves each connection to the Unix socket at `socketPath` with a pglite-socket protocol handler that shares the one
 * session through `queue`. A socket file left by a killed server is removed first: the caller holds the data directory
 * lock, so nobody else serves it. The socket file is made owner-only too, whatever the umask.
 */
async function serve(queue: SessionQueue, handlers: Set<PGLiteSocketHandler>, socketPath: string): Promise<Server> {
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
  await unlink(socketPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(socketPath, () => resolve())
  })
  await chmod(socketPath, 0o600)
  return server
}
