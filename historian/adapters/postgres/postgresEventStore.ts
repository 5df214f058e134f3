import type pg from 'pg'
import { classifyRejectedAppend } from '../../appendConflicts'
import {
  ConcurrencyError,
  EventIdConflictError,
  EventStoreUnavailableError,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type Unsubscribe,
} from '../../port'
import { assertTenantId } from '../../streams'
import type { Database } from './database'
import { assertStreamName, validateAppendBatch } from '../../appendRules'

/** The NOTIFY channel every append signals on commit; the payload is the append's last global position. */
export const EVENTS_CHANNEL = 'annalist_events'

/*
 * Appends are serialized by a transaction-scoped advisory lock, taken first thing by annalist_append
 * (migrations/004_append_function.sql; key 7020670233826915188).
 *
 * Why: `position` comes from a sequence, so a transaction can take position 7, stall, and commit after another
 * transaction committed position 8. A subscriber reading `position > checkpoint` would see 8, move its checkpoint to 8,
 * and never see 7. Taking this lock first in every append transaction means a second append cannot even draw its
 * position until the first has committed (the lock is released only after the commit is visible), so positions become
 * visible in commit order and a checkpoint can never pass an event that is still to commit.
 *
 * Cost: appends are serialized across the whole database (all streams, all tenants, all processes), so append
 * throughput is at most 1 / (latency of one append transaction: one round trip plus the commit flush).
 * Reads never take the lock. test/int/globalOrdering.int.test.ts stalls a writer to prove the order holds.
 */

const DEFAULT_READ_ALL_MAX_COUNT = 1000


/** What one append did inside a transaction: wrote its events, or was rejected and must be rolled back and classified. */
export type AppendInTransactionOutcome = { readonly status: 'written'; readonly result: AppendResult } | { readonly status: 'rejected' }

interface EventRow {
  position: string
  stream_name: string
  stream_revision: string
  event_id: string
  event_type: string
  data: unknown
  metadata: Record<string, unknown>
  recorded_at: Date
}

const EVENT_COLUMNS = 'position, stream_name, stream_revision, event_id, event_type, data, metadata, recorded_at'

/**
 * The event store on PostgreSQL: a real server or embedded PGlite, through the same `pg` pool code.
 *
 * Never holds a pooled client while calling `pool.query` (a PGlite pool has one client). `close()` stops this store's
 * notification listeners; the database belongs to whoever opened it.
 */
export class PostgresEventStore implements EventStore {
  readonly kind = 'postgres' as const
  /** Whether `onAppend` hears appends made by every writer (false behind the embedded socket server: poll instead). */
  readonly notifiesOnAppend: boolean
  private readonly pool: pg.Pool
  private readonly subscriptions = new Set<Unsubscribe>()

  constructor(private readonly database: Database) {
    this.pool = database.pool
    this.notifiesOnAppend = database.notifiesAcrossConnections
  }

  async appendToStream(stream: string, events: readonly NewEvent[], options: { expectedRevision: ExpectedRevision }): Promise<AppendResult> {
    const batch = validateAppendBatch(stream, events)
    const expected = options.expectedRevision
    assertExpectedRevision(expected)
    const payload = serializeBatch(stream, batch)

    // One statement, so one round trip: the function takes the append lock, checks the revision and inserts inside the
    // statement's own transaction (migrations/004_append_function.sql).
    const outcome = await this.unavailableOnFailure(() => appendWith(this.pool, stream, payload, batch.length, expected))
    if (outcome.status === 'written') return outcome.result

    // Rejected: the client is back in the pool (PGlite has only one), so reading the stream cannot deadlock.
    const stored = await this.readStream(stream)
    return classifyRejectedAppend(stream, batch, expected, stored)
  }

  /**
   * Runs one append on `client` inside a transaction the caller has begun and will commit (or, when rejected, roll back
   * and classify with `classifyRejectedAppend`). Takes the append lock first, so until the caller commits every other
   * append waits. `appendToStream` is built on it; tests use it to stall a writer mid-transaction.
   */
  async appendInTransaction(
    client: pg.ClientBase,
    stream: string,
    events: readonly NewEvent[],
    expectedRevision: ExpectedRevision,
  ): Promise<AppendInTransactionOutcome> {
    const batch = validateAppendBatch(stream, events)
    assertExpectedRevision(expectedRevision)
    return appendWith(client, stream, serializeBatch(stream, batch), batch.length, expectedRevision)
  }

  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    assertStreamName(stream)
    const backwards = options.direction === 'backwards'
    const limit = maxCountOf(options.maxCount, null)
    const from = options.fromRevision
    if (from !== undefined && (typeof from !== 'bigint' || from < 0n)) throw new RangeError(`readStream(${stream}): fromRevision must be a bigint >= 0, got ${String(from)}`)
    const sql = backwards
      ? `select ${EVENT_COLUMNS} from events where stream_name = $1 and ($2::bigint is null or stream_revision <= $2::bigint)
         order by stream_revision desc limit $3`
      : `select ${EVENT_COLUMNS} from events where stream_name = $1 and stream_revision >= coalesce($2::bigint, 0)
         order by stream_revision asc limit $3`
    return this.select(sql, [stream, from?.toString() ?? null, limit])
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    return this.select(`select ${EVENT_COLUMNS} from events where position > $1 order by position limit $2`, [
      afterOf(options.after),
      maxCountOf(options.maxCount, DEFAULT_READ_ALL_MAX_COUNT),
    ])
  }

  async readTenantLog(tenantId: string, options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    // Served by the (tenant_id, position) index: other tenants' rows are never visited.
    return this.select(`select ${EVENT_COLUMNS} from events where tenant_id = $1 and position > $2 order by position limit $3`, [
      assertTenantId(tenantId),
      afterOf(options.after),
      maxCountOf(options.maxCount, DEFAULT_READ_ALL_MAX_COUNT),
    ])
  }

  async readEventType(type: string, options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    if (typeof type !== 'string' || type === '') throw new RangeError('readEventType: the event type must be a non-empty string')
    return this.select(`select ${EVENT_COLUMNS} from events where event_type = $1 and position > $2 order by position limit $3`, [
      type,
      afterOf(options.after),
      maxCountOf(options.maxCount, DEFAULT_READ_ALL_MAX_COUNT),
    ])
  }

  /**
   * Wakes `listener` after appends commit, through LISTEN/NOTIFY on `annalist_events`: on a real server over one
   * dedicated connection per database (not a pool slot), on PGlite through PGlite's own notification dispatcher
   * (every append goes through this process). Behind the embedded socket server notifications do not reach other
   * connections (`notifiesOnAppend` is false) and this is a no-op: readers poll.
   */
  async onAppend(listener: () => void): Promise<Unsubscribe> {
    const stop = await this.unavailableOnFailure(() => this.database.listen(EVENTS_CHANNEL, () => listener()))
    const unsubscribe: Unsubscribe = async () => {
      if (this.subscriptions.delete(unsubscribe)) await stop()
    }
    this.subscriptions.add(unsubscribe)
    return unsubscribe
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((unsubscribe) => unsubscribe()))
  }

  private async select(sql: string, values: unknown[]): Promise<RecordedEvent[]> {
    const { rows } = await this.unavailableOnFailure(() => this.pool.query<EventRow>(sql, values))
    return rows.map(toRecordedEvent)
  }

  /** Input was validated before any I/O, so whatever fails here is the database's doing: report it as unavailable. */
  private async unavailableOnFailure<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      if (error instanceof ConcurrencyError || error instanceof EventIdConflictError || error instanceof EventStoreUnavailableError) throw error
      throw new EventStoreUnavailableError('postgres', error)
    }
  }
}

function toRecordedEvent(row: EventRow): RecordedEvent {
  return {
    eventId: row.event_id,
    type: row.event_type,
    data: row.data,
    metadata: row.metadata,
    streamName: row.stream_name,
    revision: BigInt(row.stream_revision),
    position: BigInt(row.position),
    recordedAt: row.recorded_at,
  }
}

/** The batch as the JSON array the insert unpacks. jsonb cannot hold U+0000, so that is refused here as bad input. */
function serializeBatch(stream: string, batch: readonly NewEvent[]): string {
  const payload = JSON.stringify(batch.map(toInsertPayload))
  if (/(?:^|[^\\])(?:\\\\)*\\u0000/.test(payload)) {
    throw new RangeError(`appendToStream(${stream}): event data or metadata contains a NUL character (U+0000), which PostgreSQL jsonb cannot store`)
  }
  return payload
}

function toInsertPayload(event: NewEvent) {
  const schemaVersion = event.metadata.schemaVersion
  return {
    eventId: event.eventId,
    type: event.type,
    schemaVersion: typeof schemaVersion === 'number' && Number.isSafeInteger(schemaVersion) ? schemaVersion : 1,
    // jsonb has no `undefined`: store it as JSON null.
    data: event.data === undefined ? null : event.data,
    metadata: event.metadata,
  }
}

function assertExpectedRevision(expected: ExpectedRevision): void {
  const valid = expected === 'no_stream' || expected === 'stream_exists' || expected === 'any' || (typeof expected === 'bigint' && expected >= 0n)
  if (!valid) throw new RangeError(`expectedRevision must be a bigint >= 0, 'no_stream', 'stream_exists' or 'any', got ${String(expected)}`)
}

function afterOf(after: bigint | undefined): string {
  if (after === undefined) return '0'
  if (typeof after !== 'bigint') throw new RangeError(`after must be a bigint position, got ${String(after)}`)
  return after.toString()
}

function maxCountOf<D extends number | null>(maxCount: number | undefined, fallback: D): number | D {
  if (maxCount === undefined) return fallback
  if (!Number.isSafeInteger(maxCount) || maxCount < 0) throw new RangeError(`maxCount must be a whole number >= 0, got ${String(maxCount)}`)
  return maxCount
}

/**
 * Runs one append through `annalist_append` on `queryable` (a pool: its own implicit transaction; a client inside a
 * transaction: the caller's, which then holds the append lock until it commits). No row back means rejected.
 */
async function appendWith(
  queryable: pg.Pool | pg.ClientBase,
  stream: string,
  payload: string,
  count: number,
  expected: ExpectedRevision,
): Promise<AppendInTransactionOutcome> {
  const result = await queryable.query<{ last_position: string | null; last_revision: string | null }>(
    'select last_position::text, last_revision::text from annalist_append($1, $2, $3::jsonb)',
    [stream, typeof expected === 'bigint' ? expected.toString() : expected, payload],
  )
  const row = result.rows[0]
  if (!row) return { status: 'rejected' }
  if (row.last_position === null || row.last_revision === null) throw new Error(`append to ${stream}: wrote none of ${count} events`)
  return { status: 'written', result: { nextExpectedRevision: BigInt(row.last_revision), position: BigInt(row.last_position), written: true } }
}
