import type pg from 'pg'
import type { StoredEvent } from '../historian/historian'
import type { EventStore, RecordedEvent, Unsubscribe } from '../historian/port'
import { recordDeadLetter } from './projectionDeadLetters'
import { forgetLiveDeadLetters, readDecision, readSurvivors, refoldTask, type LifecycleFollowing } from './lifecycleFollower'
import { liveTables, type Projection, type ProjectionTables } from './projection'
import { readRecorded, type ReadOutcome } from './readOutcome'

/** What one committed batch did for one projection. */
export interface ProjectionProgress {
  readonly projection: string
  /** The projection's checkpoint after the batch: the last position it has processed. */
  readonly position: bigint
  /** Events of the batch applied to the read model. */
  readonly applied: number
  /** Events of the batch recorded as dead letters instead. */
  readonly deadLettered: number
  /**
   * The batch's lag in milliseconds, from the database clock: `clock_timestamp()` when the batch was about to commit
   * minus the oldest `recorded_at` among its events (persisted with the checkpoint as `last_batch_lag_ms`).
   */
  readonly lagMs: number
  /** The same measure for each event of the batch, in log order (what a lag histogram observes). */
  readonly eventLagsMs: readonly number[]
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

export { readRecorded, type ReadOutcome } from './readOutcome'

/** Applies readable events in one call: the projection's applyBatch when it has one, else apply for each in turn. */
async function applyReadable(client: pg.PoolClient, projection: Projection, tables: ProjectionTables, events: readonly StoredEvent[]): Promise<void> {
  if (projection.applyBatch) {
    await projection.applyBatch(client, events, tables)
    return
  }
  for (const stored of events) await projection.apply(client, stored, tables)
}

/**
 * Applies `events` to one projection inside the caller's open transaction. Events that cannot be read
 * (`toStoredEvent`: unknown type, failing schema) are split off first and handed to `onPoison` one by one. The readable
 * ones are applied together under one savepoint (through `applyBatch` when the projection has it); only if that throws
 * is the batch rolled back and applied again with a savepoint per event (`apply`): an event whose applying throws then
 * has its partial writes rolled back and is handed to `onPoison`, in the same transaction, and the batch goes on.
 * Either way the outcome is the same rows and the same dead letters.
 */
export async function applyEvents(
  client: pg.PoolClient,
  projection: Projection,
  tables: ProjectionTables,
  events: readonly RecordedEvent[],
  onPoison: (event: RecordedEvent, error: unknown) => Promise<void>,
  following?: LifecycleFollowing,
): Promise<AppliedBatch> {
  return applyReadEvents(client, projection, tables, events.map(readRecorded), onPoison, following)
}

/**
 * applyEvents for events already read (readRecorded), so that several projections can share one reading. A lifecycle
 * decision (StreamLifecycleDecided) is never handed to the projection: with `following`, the events before it are
 * applied, then the decision's target task is refolded from its surviving events (projections/lifecycleFollower.ts), then
 * the events after it; without `following` (a dead-letter retry), decisions are passed over.
 */
export async function applyReadEvents(
  client: pg.PoolClient,
  projection: Projection,
  tables: ProjectionTables,
  read: readonly ReadOutcome[],
  onPoison: (event: RecordedEvent, error: unknown) => Promise<void>,
  following?: LifecycleFollowing,
): Promise<AppliedBatch> {
  let applied = 0
  const poisoned: { event: RecordedEvent; error: unknown }[] = []
  const add = (batch: AppliedBatch) => {
    applied += batch.applied
    poisoned.push(...batch.poisoned)
  }
  let segment: ReadOutcome[] = []
  for (const outcome of read) {
    const decision = readDecision(outcome)
    if (!decision) {
      segment.push(outcome)
      continue
    }
    add(await applySegment(client, projection, tables, segment, onPoison))
    segment = []
    applied++
    const survivors = following?.survivors.get(decision.position)
    if (!following || !survivors) continue
    await refoldTask(client, projection, tables, decision.data.targetStream, survivors, following, async (kept) => {
      // Re-applied rows and re-recorded dead letters only restore what the task had: they are not this batch's.
      await applySegment(client, projection, tables, kept, onPoison)
    })
  }
  add(await applySegment(client, projection, tables, segment, onPoison))
  return { applied, poisoned }
}

/** Applies events that hold no lifecycle decision: one savepoint for the batch, one per event if the batch fails. */
async function applySegment(
  client: pg.PoolClient,
  projection: Projection,
  tables: ProjectionTables,
  read: readonly ReadOutcome[],
  onPoison: (event: RecordedEvent, error: unknown) => Promise<void>,
): Promise<AppliedBatch> {
  const readable = read.flatMap((outcome) => ('stored' in outcome ? [outcome.stored] : []))
  const poisoned: { event: RecordedEvent; error: unknown }[] = []
  const poison = async (event: RecordedEvent, error: unknown) => {
    await onPoison(event, error)
    poisoned.push({ event, error })
  }
  if (readable.length > 1) {
    await client.query('savepoint projection_batch')
    let whole = true
    try {
      await applyReadable(client, projection, tables, readable)
    } catch {
      whole = false
      await client.query('rollback to savepoint projection_batch')
    }
    await client.query('release savepoint projection_batch')
    if (whole) {
      for (const outcome of read) if ('error' in outcome) await poison(outcome.recorded, outcome.error)
      return { applied: readable.length, poisoned }
    }
  }
  let applied = 0
  for (const outcome of read) {
    if ('error' in outcome) {
      await poison(outcome.recorded, outcome.error)
      continue
    }
    await client.query('savepoint projection_event')
    try {
      await projection.apply(client, outcome.stored, tables)
      await client.query('release savepoint projection_event')
      applied++
    } catch (error) {
      await client.query('rollback to savepoint projection_event')
      await client.query('release savepoint projection_event')
      await poison(outcome.recorded, error)
    }
  }
  return { applied, poisoned }
}

function oldestRecordedAt(events: readonly RecordedEvent[]): Date {
  return events.reduce((oldest, event) => (event.recordedAt < oldest ? event.recordedAt : oldest), events[0]!.recordedAt)
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

/** One projection's loop: its wake-up state and the checkpoint it last committed or read (undefined: read it again). */
interface ProjectionLoop {
  readonly projection: Projection
  checkpoint: bigint | undefined
  pendingWake: boolean
  wakeSleeper: (() => void) | undefined
}

/**
 * Follows the event log and keeps projections up to date. Each projection has its own checkpoint in
 * `projection_checkpoints` and its own loop, so a slow or failing projection does not hold up the others; a batch's
 * read-model writes, dead letters and checkpoint commit in one transaction. Every loop wakes on the store's append
 * notification and polls as a fallback, and never holds a pooled client while reading the store or querying through
 * the pool (PGlite's pool has a single connection: the loops take turns on it).
 * Several runners may follow the same projection: the checkpoint row is locked and re-checked, so only one commits a batch.
 */
export class ProjectionRunner {
  private readonly batchSize: number
  private readonly pollIntervalMs: number
  private running: Promise<void> | undefined
  private stopRequested = false
  private readonly loops: readonly ProjectionLoop[]
  private readonly progressWaiters = new Set<() => void>()

  constructor(private readonly options: ProjectionRunnerOptions) {
    this.batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${this.batchSize}`)
    if (!(this.pollIntervalMs > 0)) throw new RangeError(`pollIntervalMs must be positive, got ${this.pollIntervalMs}`)
    const names = options.projections.map((projection) => projection.name)
    const duplicate = names.find((name, index) => names.indexOf(name) !== index)
    if (duplicate !== undefined) throw new RangeError(`projection name ${duplicate} is used twice`)
    this.loops = options.projections.map((projection) => ({ projection, checkpoint: undefined, pendingWake: false, wakeSleeper: undefined }))
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

  /** Stops the runner after each projection's current batch and waits for it to finish. */
  async stop(): Promise<void> {
    this.stopRequested = true
    this.wake()
    await this.running
  }

  /**
   * Processes every projection until no events are left, the projections side by side; returns the lowest checkpoint
   * reached. Rejects with the first error once every projection has stopped.
   */
  async catchUp(): Promise<bigint> {
    const settled = await Promise.allSettled(
      this.loops.map(async (loop) => {
        loop.checkpoint = undefined
        let outcome: BatchOutcome
        do outcome = await this.runBatch(loop)
        while (outcome.more)
        return outcome.position
      }),
    )
    const failed = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected')
    if (failed) throw failed.reason
    const positions = settled.map((result) => (result as PromiseFulfilledResult<bigint>).value)
    return positions.reduce((lowest, position) => (position < lowest ? position : lowest), positions[0] ?? 0n)
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
      await Promise.all(this.loops.map((loop) => this.follow(loop)))
    } finally {
      await unsubscribe?.().catch((error: unknown) => this.reportError(error, '(append notifications)'))
    }
  }

  /** One projection's loop: a batch at a time while there is more, then sleep until woken or the poll interval passes. */
  private async follow(loop: ProjectionLoop): Promise<void> {
    while (!this.stopRequested) {
      loop.pendingWake = false
      let more = false
      try {
        more = (await this.runBatch(loop)).more
      } catch (error) {
        loop.checkpoint = undefined
        this.reportError(error, loop.projection.name)
      }
      if (!more && !this.stopRequested) await this.sleep(loop, this.pollIntervalMs)
    }
  }

  private async runBatch(loop: ProjectionLoop): Promise<BatchOutcome> {
    const { pool, store } = this.options
    const { projection } = loop
    // The loop knows the checkpoint it committed last; the locked re-check below catches another runner moving it.
    const checkpoint = loop.checkpoint ?? (await readCheckpoint(pool, projection.name))
    loop.checkpoint = checkpoint
    const events = await store.readAll({ after: readAfter(checkpoint), maxCount: this.batchSize })
    const last = events[events.length - 1]
    if (!last) {
      // Idle: read the checkpoint again next time, in case it was moved or reset from outside.
      loop.checkpoint = undefined
      return { position: checkpoint, more: false }
    }
    const read = events.map(readRecorded)
    // Read before a pooled client is held (a PGlite pool has one): the events each lifecycle decision keeps.
    const following: LifecycleFollowing = { survivors: await readSurvivors(store, read), forgetDeadLetters: forgetLiveDeadLetters }

    const outcome = await withClient(pool, async (client): Promise<{ applied: AppliedBatch; committingAt: Date } | { raced: bigint }> => {
      await client.query('begin')
      try {
        if (checkpoint === 0n) {
          await client.query(`insert into projection_checkpoints (name, position) values ($1, 0) on conflict (name) do nothing`, [projection.name])
        }
        const locked = await client.query<{ position: string }>(`select position from projection_checkpoints where name = $1 for update`, [projection.name])
        const current = BigInt(locked.rows[0]?.position ?? 0)
        if (current !== checkpoint || locked.rows.length === 0) {
          await client.query('rollback')
          return { raced: current }
        }
        const applied = await applyReadEvents(client, projection, liveTables(projection), read, (event, error) =>
          recordDeadLetter(client, projection.name, event, error), following,
        )
        const committing = await client.query<{ at: Date }>(
          `update projection_checkpoints
              set position = $2, updated_at = now(), last_batch_at = clock_timestamp(),
                  last_batch_lag_ms = greatest(0, extract(epoch from clock_timestamp() - $3::timestamptz) * 1000)
            where name = $1
        returning last_batch_at as at`,
          [projection.name, last.position.toString(), oldestRecordedAt(events).toISOString()],
        )
        await client.query('commit')
        return { applied, committingAt: committing.rows[0]!.at }
      } catch (error) {
        await client.query('rollback').catch(() => undefined)
        throw error
      }
    })

    if ('raced' in outcome) {
      loop.checkpoint = outcome.raced
      return { position: outcome.raced, more: true }
    }
    loop.checkpoint = last.position
    const eventLagsMs = events.map((event) => Math.max(0, outcome.committingAt.getTime() - event.recordedAt.getTime()))
    this.notifyProgress({
      projection: projection.name,
      position: last.position,
      applied: outcome.applied.applied,
      deadLettered: outcome.applied.poisoned.length,
      lagMs: Math.max(...eventLagsMs),
      eventLagsMs,
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
    for (const loop of this.loops) {
      const sleeper = loop.wakeSleeper
      if (sleeper) sleeper()
      else loop.pendingWake = true
    }
  }

  private sleep(loop: ProjectionLoop, ms: number): Promise<void> {
    if (loop.pendingWake) {
      loop.pendingWake = false
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        loop.wakeSleeper = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      loop.wakeSleeper = done
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
