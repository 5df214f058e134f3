import type pg from 'pg'
import { toStoredEvent } from '../historian/historian'
import type { EventStore, RecordedEvent, Unsubscribe } from '../historian/port'
import { recordDeadLetter } from './deadLetters'
import { liveTables, type Projection, type ProjectionTables } from './projection'

/** What one committed batch did for one projection. */
export interface ProjectionProgress {
  readonly projection: string
  /** The projection's checkpoint after the batch: the last position it has processed. */
  readonly position: bigint
  /** Events of the batch applied to the read model. */
  readonly applied: number
  /** Events of the batch recorded as dead letters instead. */
  readonly deadLettered: number
}

export interface ProjectionRunnerOptions {
  readonly store: EventStore
  readonly pool: pg.Pool
  readonly projections: readonly Projection[]
  /** Events read and committed per transaction. Default 100. */
  readonly batchSize?: number
  /** Fallback poll when no append notification arrives (stores that cannot notify across processes). Default 500 ms. */
  readonly pollIntervalMs?: number
  readonly onProgress?: (progress: ProjectionProgress) => void
  /** Called when a whole batch fails (the database is down, say); the runner retries after the poll interval. Default: console.error. */
  readonly onError?: (error: unknown, projection: string) => void
}

/** Thrown when waitForPosition's deadline passes before every projection's checkpoint reaches the position. */
export class ProjectionTimeoutError extends Error {
  constructor(
    readonly position: bigint,
    readonly timeoutMs: number,
    readonly checkpoints: Readonly<Record<string, bigint>>,
  ) {
    const lagging = Object.entries(checkpoints)
      .filter(([, at]) => at < position)
      .map(([name, at]) => `${name} at ${at}`)
    super(`projections did not reach position ${position} within ${timeoutMs} ms (${lagging.join(', ') || 'no checkpoints'})`)
    this.name = 'ProjectionTimeoutError'
  }
}

/** What applying one batch inside the caller's transaction did. */
export interface AppliedBatch {
  readonly applied: number
  readonly poisoned: readonly { readonly event: RecordedEvent; readonly error: unknown }[]
}

/**
 * Applies `events` to one projection inside the caller's open transaction. Each event runs under its own savepoint:
 * if reading it (`toStoredEvent`: unknown type, failing schema) or applying it throws, its partial writes are rolled
 * back and it is handed to `onPoison`, in the same transaction, and the batch goes on.
 */
export async function applyEvents(
  client: pg.PoolClient,
  projection: Projection,
  tables: ProjectionTables,
  events: readonly RecordedEvent[],
  onPoison: (event: RecordedEvent, error: unknown) => Promise<void>,
): Promise<AppliedBatch> {
  let applied = 0
  const poisoned: { event: RecordedEvent; error: unknown }[] = []
  for (const recorded of events) {
    await client.query('savepoint projection_event')
    try {
      await projection.apply(client, toStoredEvent(recorded), tables)
      await client.query('release savepoint projection_event')
      applied++
    } catch (error) {
      await client.query('rollback to savepoint projection_event')
      await client.query('release savepoint projection_event')
      await onPoison(recorded, error)
      poisoned.push({ event: recorded, error })
    }
  }
  return { applied, poisoned }
}

/** The checkpoint `after` bound for a store read: 0 means "from the beginning". */
export function readAfter(checkpoint: bigint): bigint | undefined {
  return checkpoint > 0n ? checkpoint : undefined
}

interface BatchOutcome {
  readonly position: bigint
  /** True when there may be more to do right away: the batch was full, or another runner moved the checkpoint. */
  readonly more: boolean
}

const DEFAULT_BATCH_SIZE = 100
const DEFAULT_POLL_INTERVAL_MS = 500

/**
 * Follows the event log and keeps projections up to date. Each projection has its own checkpoint in
 * `projection_checkpoints`; a batch's read-model writes, dead letters and checkpoint commit in one transaction.
 * Wakes on the store's append notification, polls as a fallback, and never holds a pooled client while reading
 * the store or querying through the pool (PGlite's pool has a single connection).
 * Several runners may follow the same projection: the checkpoint row is locked and re-checked, so only one commits a batch.
 */
export class ProjectionRunner {
  private readonly batchSize: number
  private readonly pollIntervalMs: number
  private running: Promise<void> | undefined
  private stopRequested = false
  private pendingWake = false
  private wakeSleeper: (() => void) | undefined
  private readonly progressWaiters = new Set<() => void>()

  constructor(private readonly options: ProjectionRunnerOptions) {
    this.batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${this.batchSize}`)
    if (!(this.pollIntervalMs > 0)) throw new RangeError(`pollIntervalMs must be positive, got ${this.pollIntervalMs}`)
    const names = options.projections.map((projection) => projection.name)
    const duplicate = names.find((name, index) => names.indexOf(name) !== index)
    if (duplicate !== undefined) throw new RangeError(`projection name ${duplicate} is used twice`)
  }

  /** Runs until stop(): catches up, then processes new events as they are appended. */
  start(): Promise<void> {
    if (this.running) throw new Error('projection runner already started')
    this.stopRequested = false
    this.running = this.run().finally(() => {
      this.running = undefined
    })
    return this.running
  }

  /** Stops the runner after its current batch and waits for it to finish. */
  async stop(): Promise<void> {
    this.stopRequested = true
    this.wake()
    await this.running
  }

  /** Processes every projection until no events are left; returns the lowest checkpoint reached. */
  async catchUp(): Promise<bigint> {
    let lowest: bigint | undefined
    for (const projection of this.options.projections) {
      let outcome: BatchOutcome
      do outcome = await this.runBatch(projection)
      while (outcome.more)
      if (lowest === undefined || outcome.position < lowest) lowest = outcome.position
    }
    return lowest ?? 0n
  }

  /** Resolves when every projection's committed checkpoint is at or past `position`; rejects with ProjectionTimeoutError. */
  async waitForPosition(position: bigint, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const checkpoints = await this.readCheckpoints()
      if (this.options.projections.every((projection) => (checkpoints[projection.name] ?? 0n) >= position)) return
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new ProjectionTimeoutError(position, timeoutMs, checkpoints)
      // Woken by this runner's commits at once; the poll covers runners in other processes.
      await this.nextProgress(Math.min(remaining, this.pollIntervalMs))
    }
  }

  private async run(): Promise<void> {
    let unsubscribe: Unsubscribe | undefined
    try {
      unsubscribe = await this.options.store.onAppend(() => this.wake())
    } catch (error) {
      this.reportError(error, '(append notifications; polling only)')
    }
    try {
      while (!this.stopRequested) {
        this.pendingWake = false
        let more = false
        for (const projection of this.options.projections) {
          if (this.stopRequested) break
          try {
            if ((await this.runBatch(projection)).more) more = true
          } catch (error) {
            this.reportError(error, projection.name)
          }
        }
        if (!more && !this.stopRequested) await this.sleep(this.pollIntervalMs)
      }
    } finally {
      await unsubscribe?.().catch((error: unknown) => this.reportError(error, '(append notifications)'))
    }
  }

  private async runBatch(projection: Projection): Promise<BatchOutcome> {
    const { pool, store } = this.options
    const checkpoint = await readCheckpoint(pool, projection.name)
    const events = await store.readAll({ after: readAfter(checkpoint), maxCount: this.batchSize })
    const last = events[events.length - 1]
    if (!last) return { position: checkpoint, more: false }

    const outcome = await withClient(pool, async (client): Promise<{ applied: AppliedBatch } | { raced: bigint }> => {
      await client.query('begin')
      try {
        await client.query(`insert into projection_checkpoints (name, position) values ($1, 0) on conflict (name) do nothing`, [projection.name])
        const locked = await client.query<{ position: string }>(`select position from projection_checkpoints where name = $1 for update`, [projection.name])
        const current = BigInt(locked.rows[0]!.position)
        if (current !== checkpoint) {
          await client.query('rollback')
          return { raced: current }
        }
        const applied = await applyEvents(client, projection, liveTables(projection), events, (event, error) =>
          recordDeadLetter(client, projection.name, event, error),
        )
        await client.query(`update projection_checkpoints set position = $2, updated_at = now() where name = $1`, [
          projection.name,
          last.position.toString(),
        ])
        await client.query('commit')
        return { applied }
      } catch (error) {
        await client.query('rollback').catch(() => undefined)
        throw error
      }
    })

    if ('raced' in outcome) return { position: outcome.raced, more: true }
    this.notifyProgress({
      projection: projection.name,
      position: last.position,
      applied: outcome.applied.applied,
      deadLettered: outcome.applied.poisoned.length,
    })
    return { position: last.position, more: events.length >= this.batchSize }
  }

  private async readCheckpoints(): Promise<Record<string, bigint>> {
    const names = this.options.projections.map((projection) => projection.name)
    const result = await this.options.pool.query<{ name: string; position: string }>(
      `select name, position from projection_checkpoints where name = any($1::text[])`,
      [names],
    )
    const checkpoints: Record<string, bigint> = Object.fromEntries(names.map((name) => [name, 0n]))
    for (const row of result.rows) checkpoints[row.name] = BigInt(row.position)
    return checkpoints
  }

  private notifyProgress(progress: ProjectionProgress): void {
    try {
      this.options.onProgress?.(progress)
    } catch (error) {
      this.reportError(error, `${progress.projection} (onProgress)`)
    }
    const waiters = [...this.progressWaiters]
    this.progressWaiters.clear()
    for (const resolve of waiters) resolve()
  }

  private nextProgress(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.progressWaiters.delete(done)
        resolve()
      }
      const timer = setTimeout(done, timeoutMs)
      this.progressWaiters.add(done)
    })
  }

  private wake(): void {
    const sleeper = this.wakeSleeper
    if (sleeper) sleeper()
    else this.pendingWake = true
  }

  private sleep(ms: number): Promise<void> {
    if (this.pendingWake) {
      this.pendingWake = false
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.wakeSleeper = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.wakeSleeper = done
    })
  }

  private reportError(error: unknown, where: string): void {
    if (this.options.onError) this.options.onError(error, where)
    else console.error(`projection runner: ${where}:`, error)
  }
}

/**
 * Runs `work` with a pooled client. A client whose work failed is destroyed rather than pooled (its connection may be
 * dead or mid-transaction), and connection errors while it is held fail the pending query instead of the process.
 */
export async function withClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  const ignore = () => undefined
  client.on('error', ignore)
  let failure: Error | undefined
  try {
    return await work(client)
  } catch (error) {
    failure = error instanceof Error ? error : new Error(String(error))
    throw error
  } finally {
    client.off('error', ignore)
    client.release(failure)
  }
}

/** A projection's committed checkpoint, 0 when it has never run. */
export async function readCheckpoint(pool: pg.Pool, projection: string): Promise<bigint> {
  const result = await pool.query<{ position: string }>(`select position from projection_checkpoints where name = $1`, [projection])
  const row = result.rows[0]
  return row ? BigInt(row.position) : 0n
}
