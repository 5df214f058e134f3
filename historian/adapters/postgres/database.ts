import { randomUUID } from 'node:crypto'
import { chmod, link, mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { createPgConfig } from '@electric-sql/pglite/node-postgres'
import pg from 'pg'
import { runMigrations } from './migrate'

/** Where embedded PGlite keeps its files when no directory is given. */
export const DEFAULT_PGLITE_DATA_DIR = '.annalist/pgdata'

const CONNECT_TIMEOUT_MS = 10_000

/**
 * How long one SQL statement may run on a PostgreSQL server before the server cancels it, unless `openDatabase` is
 * told otherwise (ANNALIST_STATEMENT_TIMEOUT_MS): one caller's runaway query must not hold a connection for everyone.
 */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000

/** Stops a notification listener. */
export type StopListening = () => Promise<void>

/**
 * A PostgreSQL database reached through a `pg` pool: a real server (`kind: 'postgres'`) or embedded PGlite
 * (`kind: 'pglite'`, a pool of ONE client: never hold a client, e.g. in a transaction, while calling `pool.query`).
 */
export interface Database {
  readonly kind: 'postgres' | 'pglite'
  readonly pool: pg.Pool
  /**
   * True when `listen` hears notifications from every writer of this database: a real server, or PGlite in this
   * process. False behind the embedded socket server, whose single session hands a NOTIFY to the connection that
   * committed it, not to listeners; readers of such a database must rely on polling.
   */
  readonly notifiesAcrossConnections: boolean
  /**
   * True when several connections share one database session (behind the embedded PGlite socket server), so
   * session state such as named prepared statements would collide between connections.
   */
  readonly sharesSessionAcrossConnections: boolean
  /** Calls `listener` with the payload of every NOTIFY on `channel` after its transaction commits. A hint: poll as well. */
  listen(channel: string, listener: (payload: string) => void): Promise<StopListening>
  close(): Promise<void>
}

/** Thrown when the PostgreSQL server at a URL cannot be reached or refuses the connection. */
export class DatabaseConnectionError extends Error {
  constructor(
    readonly maskedUrl: string,
    cause: unknown,
  ) {
    super(`cannot connect to PostgreSQL at ${maskedUrl}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    this.name = 'DatabaseConnectionError'
  }
}

/** Thrown when another live process (or another open database in this process) already uses a PGlite data directory. */
export class DataDirectoryLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly ownerPid: number,
    readonly lockFile: string,
  ) {
    super(
      `PGlite data directory ${dataDir} is in use by process ${ownerPid} (lock file ${lockFile}); ` +
        'stop that process, or share one database through DATABASE_URL or the embedded server',
    )
    this.name = 'DataDirectoryLockedError'
  }
}

/** The URL with its password replaced by `***`, safe for logs and error messages. */
export function maskDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@').replace(/(password=)[^\s&]*/gi, '$1***')
  }
}

/**
 * Opens the database: `url` -> a pool of up to 10 connections to that server, each with `statement_timeout` set to
 * `statementTimeoutMs` (default DEFAULT_STATEMENT_TIMEOUT_MS; 0: none); otherwise embedded PGlite in `pgliteDataDir`
 * (default `.annalist/pgdata`; `memory://` for a throwaway one), locked to this process until `close()`.
 * Runs the schema migrations unless `migrate: false`.
 *
 * PGlite ignores `statement_timeout` (it runs in this thread, with no timer to cancel a statement: `select pg_sleep(2)`
 * under a 200 ms timeout sleeps 2 s, in process and behind the embedded socket server alike, which also drops the
 * start-up parameter), so there a statement is bounded only by the work it is given (docs/api.md, "Limits and timeouts").
 */
export async function openDatabase(options: { url?: string; pgliteDataDir?: string; migrate?: boolean; statementTimeoutMs?: number }): Promise<Database> {
  const statementTimeoutMs = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS
  if (!Number.isSafeInteger(statementTimeoutMs) || statementTimeoutMs < 0) throw new RangeError(`statementTimeoutMs must be a whole number of milliseconds, 0 for none, got ${statementTimeoutMs}`)
  const database = options.url ? await openServer(options.url, statementTimeoutMs) : await openPglite(options.pgliteDataDir ?? DEFAULT_PGLITE_DATA_DIR)
  if (options.migrate !== false) {
    try {
      await runMigrations(database.pool)
    } catch (error) {
      await database.close().catch(() => undefined)
      throw error
    }
  }
  return database
}

async function openServer(url: string, statementTimeoutMs: number): Promise<Database> {
  const maskedUrl = maskDatabaseUrl(url)
  // Probe with a connect timeout, so a wrong URL fails fast with a clear message. The pool itself gets none: pg-pool
  // applies it to callers queued for a busy pool as well, which under load would fail healthy requests.
  let version: string
  const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS })
  probe.on('error', () => undefined)
  try {
    await probe.connect()
    const { rows } = await probe.query<{ version: string }>('select version() as version')
    version = rows[0]?.version ?? ''
  } catch (error) {
    throw new DatabaseConnectionError(maskedUrl, error)
  } finally {
    await probe.end().catch(() => undefined)
  }
  // Sent in each connection's start-up message, so it holds for every statement, pooled or not.
  const pool = new pg.Pool({ connectionString: url, max: 10, ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}) })
  // An idle client whose connection drops emits 'error' on the pool; without a listener that would crash the process.
  pool.on('error', (error) => process.stderr.write(`[annalist] idle PostgreSQL connection to ${maskedUrl} failed: ${error.message}\n`))
  // The embedded server (embeddedServer.ts) speaks the wire protocol for one PGlite session: LISTEN there never hears
  // other connections' notifications, so do not spend a connection on it.
  const behindPgliteSocket = version.includes('PGlite')
  const hub = behindPgliteSocket ? undefined : new ServerNotificationHub(url, maskedUrl)
  let closed = false
  return {
    kind: 'postgres',
    pool,
    notifiesAcrossConnections: !behindPgliteSocket,
    sharesSessionAcrossConnections: behindPgliteSocket,
    listen: (channel, listener) => (hub ? hub.listen(channel, listener) : Promise.resolve(async () => undefined)),
    async close() {
      if (closed) return
      closed = true
      await hub?.close()
      await pool.end()
    },
  }
}

async function openPglite(dataDir: string): Promise<Database> {
  const inMemory = dataDir.startsWith('memory://')
  const created = inMemory ? false : await createPrivateDirectory(dataDir)
  const releaseLock = inMemory ? async () => undefined : await lockDataDirectory(dataDir)
  let pglite: PGlite
  try {
    pglite = new PGlite(inMemory ? dataDir : path.resolve(dataDir))
    await pglite.waitReady
    if (created) await restrictToOwner(dataDir)
  } catch (error) {
    await releaseLock()
    throw new Error(`cannot open PGlite data directory ${dataDir}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  const pool = new pg.Pool({ ...createPgConfig(pglite), max: 1 })
  pool.on('error', (error) => process.stderr.write(`[annalist] PGlite connection error: ${error.message}\n`))
  const listening = new Set<string>()
  let closed = false
  return {
    kind: 'pglite',
    pool,
    notifiesAcrossConnections: true,
    sharesSessionAcrossConnections: false,
    async listen(channel, listener) {
      // PGlite is one session in this process, and every append goes through it, so LISTEN once on that session and
      // take notifications from PGlite's own dispatcher. LISTEN goes through the pool so it never lands inside another
      // caller's open transaction; the pool's client is not held afterwards.
      if (!listening.has(channel)) {
        await pool.query(`listen ${pg.escapeIdentifier(channel)}`)
        listening.add(channel)
      }
      const stop = pglite.onNotification((notifiedChannel, payload) => {
        if (notifiedChannel === channel) callSafely(listener, payload)
      })
      return async () => stop()
    },
    async close() {
      if (closed) return
      closed = true
      try {
        await pool.end()
        await pglite.close()
      } finally {
        await releaseLock()
      }
    },
  }
}

function callSafely(listener: (payload: string) => void, payload: string): void {
  try {
    listener(payload)
  } catch (error) {
    process.stderr.write(`[annalist] notification listener failed: ${error instanceof Error ? error.message : String(error)}\n`)
  }
}

/**
 * LISTEN on a real server through one dedicated `pg.Client` (not a pool slot) shared by all listeners of a database.
 * If the connection drops it reconnects after a second and wakes every listener once, since notifications sent
 * meanwhile are lost.
 */
class ServerNotificationHub {
  private readonly listeners = new Map<string, Set<(payload: string) => void>>()
  private client: pg.Client | undefined
  private connecting: Promise<pg.Client> | undefined
  private reconnectTimer: NodeJS.Timeout | undefined
  private closed = false

  constructor(
    private readonly url: string,
    private readonly maskedUrl: string,
  ) {}

  async listen(channel: string, listener: (payload: string) => void): Promise<StopListening> {
    if (this.closed) throw new Error('database is closed')
    let channelListeners = this.listeners.get(channel)
    const isNewChannel = channelListeners === undefined
    if (!channelListeners) {
      channelListeners = new Set()
      this.listeners.set(channel, channelListeners)
    }
    channelListeners.add(listener)
    try {
      const client = await this.connect()
      if (isNewChannel) await client.query(`listen ${pg.escapeIdentifier(channel)}`)
    } catch (error) {
      channelListeners.delete(listener)
      if (channelListeners.size === 0) this.listeners.delete(channel)
      throw new DatabaseConnectionError(this.maskedUrl, error)
    }
    return async () => {
      const current = this.listeners.get(channel)
      if (!current?.delete(listener) || current.size > 0) return
      this.listeners.delete(channel)
      if (this.listeners.size === 0) await this.disconnect()
      else await this.client?.query(`unlisten ${pg.escapeIdentifier(channel)}`).catch(() => undefined)
    }
  }

  async close(): Promise<void> {
    this.closed = true
    this.listeners.clear()
    await this.disconnect()
  }

  private connect(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client)
    this.connecting ??= (async () => {
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS })
      client.on('notification', (message) => {
        for (const listener of this.listeners.get(message.channel) ?? []) callSafely(listener, message.payload ?? '')
      })
      client.on('error', () => this.lost(client))
      client.on('end', () => this.lost(client))
      try {
        await client.connect()
        this.client = client
        return client
      } catch (error) {
        await client.end().catch(() => undefined)
        throw error
      } finally {
        this.connecting = undefined
      }
    })()
    return this.connecting
  }

  private async disconnect(): Promise<void> {
    clearTimeout(this.reconnectTimer)
    this.reconnectTimer = undefined
    const client = this.client
    this.client = undefined
    await client?.end().catch(() => undefined)
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return
    this.client = undefined
    client.end().catch(() => undefined)
    if (!this.closed && this.listeners.size > 0) this.scheduleReconnect()
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer) return
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      void this.reconnect()
    }, 1_000)
    this.reconnectTimer.unref()
  }

  private async reconnect(): Promise<void> {
    if (this.closed || this.listeners.size === 0) return
    try {
      const client = await this.connect()
      for (const channel of this.listeners.keys()) await client.query(`listen ${pg.escapeIdentifier(channel)}`)
      for (const channelListeners of this.listeners.values()) for (const listener of channelListeners) callSafely(listener, '')
    } catch {
      this.scheduleReconnect()
    }
  }
}

const LOCK_FILE_NAME = 'annalist.lock'

/**
 * Locks a PGlite data directory to this process: PGlite takes no lock of its own, and two processes writing one
 * directory lose rows. The lock is a file holding the owner's pid, created atomically (hard link of a complete file,
 * which fails if the lock exists). A lock whose pid is no longer running is stale and taken over; the takeover renames
 * the file away and checks it still named the dead process, putting it back otherwise, so two processes recovering
 * from the same crash at the same moment do not both end up owning the directory.
 * A pid reused by an unrelated process keeps the directory locked: the error names the pid and the lock file to check.
 * Returns the release function.
 */
export async function lockDataDirectory(dataDir: string): Promise<() => Promise<void>> {
  const dir = path.resolve(dataDir)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const lockFile = path.join(dir, LOCK_FILE_NAME)
  const release = async () => {
    if ((await readOwnerPid(lockFile)) === process.pid) await unlink(lockFile).catch(() => undefined)
  }
  for (let attempt = 0; attempt < 5; attempt += 1) {
    if (await createLockFile(lockFile)) return release
    const owner = await readOwnerPid(lockFile)
    if (owner === undefined) continue // released meanwhile
    if (isRunning(owner)) throw new DataDirectoryLockedError(dir, owner, lockFile)
    await removeStaleLock(lockFile, owner)
  }
  throw new Error(`could not lock PGlite data directory ${dir}: lock file ${lockFile} keeps changing owner`)
}

async function createLockFile(lockFile: string): Promise<boolean> {
  const draft = `${lockFile}.${process.pid}.${randomUUID()}`
  await writeFile(draft, `${process.pid}\n`, { mode: 0o600 })
  try {
    await link(draft, lockFile)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  } finally {
    await unlink(draft).catch(() => undefined)
  }
}

async function readOwnerPid(lockFile: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(lockFile, 'utf8'), 10)
    return Number.isSafeInteger(pid) && pid > 0 ? pid : -1
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

function isRunning(pid: number): boolean {
  if (pid <= 0) return false // unreadable lock file: nobody can prove ownership
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function removeStaleLock(lockFile: string, stalePid: number): Promise<void> {
  const aside = `${lockFile}.stale.${process.pid}.${randomUUID()}`
  try {
    await rename(lockFile, aside)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  if ((await readOwnerPid(aside)) !== stalePid) {
    // Another process took the lock over between our read and the rename: put its lock back.
    await link(aside, lockFile).catch(() => undefined)
  }
  await unlink(aside).catch(() => undefined)
}

/**
 * Creates `dir` and any missing parents owner-only (0700), and says whether it did: a data directory Annalist creates
 * is private to its user, one the operator made is left as they made it (docs/security.md).
 */
export async function createPrivateDirectory(dir: string): Promise<boolean> {
  return (await mkdir(path.resolve(dir), { recursive: true, mode: 0o700 })) !== undefined
}

/**
 * Makes everything under `dir` owner-only: directories 0700, files 0600. For a data directory just created, after
 * PGlite has written its files with the process umask; later files inherit the protection of the 0700 directory.
 */
export async function restrictToOwner(dir: string): Promise<void> {
  await chmod(dir, 0o700)
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const entryPath = path.join(dir, entry.name)
    if (entry.isDirectory()) await restrictToOwner(entryPath)
    else if (entry.isFile()) await chmod(entryPath, 0o600)
  }
}
