import type pg from 'pg'
import {
  asEventStoreError,
  ConcurrencyError,
  EventStoreUnavailableError,
  MetadataConcurrencyError,
  StreamTombstonedError,
  type AppendResult,
  type EventStore,
  type ExpectedMetadataRevision,
  type ExpectedRevision,
  type ExpectedRevisionForDelete,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type StreamMetadata,
  type StreamMetadataResult,
  type Unsubscribe,
} from '../../port'
import {
  actualRevisionOf,
  assertDeleteArguments,
  classifyRejectedWrite,
  validateMetadataWrite,
} from '../../streamState'
import { assertTenantId } from '../../streams'
import type { Database } from './database'
import { assertStreamName, validateAppendBatch } from '../../appendRules'

/** The NOTIFY channel every append signals on commit; the payload is the append's last global position. */
export const EVENTS_CHANNEL = 'annalist_events'

/*
 * Appends are serialized by a transaction-scoped advisory lock, taken first thing by the annalist_append SQL function
 * (now migrations/017_tenant_sequence.sql's, which replaced 005_stream_lifecycle.sql's and 004_append_function.sql's;
 * key 7020670233826915188).
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
 *
 * The same lock makes tenant sequences dense and in commit order: annalist_append (migrations/017_tenant_sequence.sql
 * now) bumps the tenant's counter in tenant_sequences and inserts in one block, so a rejected append hands out nothing.
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
  tenant_sequence: string | null
  data: unknown
  metadata: Record<string, unknown>
  recorded_at: Date
}

const EVENT_COLUMNS = 'position, stream_name, stream_revision, event_id, event_type, tenant_sequence, data, metadata, recorded_at'

/** The event columns of alias `e`. */
const columnsOf = (e: string) => EVENT_COLUMNS.split(', ').map((column) => `${e}.${column}`).join(', ')

/**
 * Whether event `e` is visible under its stream's metadata row `m` (all nulls when the stream has none): the SQL twin
 * of the port's retention rules (migrations/005_stream_lifecycle.sql). A soft delete hides through truncate_before.
 * maxCount looks up the stream's head through the (stream_name, stream_revision) index, only for streams that set it.
 */
const visible = (e: string) => `(m.stream_name is null or (not m.tombstoned
  and (m.truncate_before is null or ${e}.stream_revision >= m.truncate_before)
  and (m.max_age_seconds is null or ${e}.recorded_at > now() - make_interval(secs => m.max_age_seconds))
  and (m.max_count is null
       or ${e}.stream_revision > (select max(h.stream_revision) from events h where h.stream_name = ${e}.stream_name) - m.max_count)))`

/**
 * Events of the whole log (or of the part `where` selects), oldest first unless `order` is 'desc', with their stream's metadata row as `m`. The lateral
 * subquery with `limit 1` keeps the metadata lookup a primary-key probe per event: the planner cannot turn it into a
 * hash join that would read every stream's metadata, other tenants' included.
 */
const globalRead = (where: string, order: 'asc' | 'desc' = 'asc') => `select ${columnsOf('e')} from events e
  left join lateral (select * from stream_metadata sm where sm.stream_name = e.stream_name limit 1) m on true
  where ${where} and ${visible('e')}
  order by e.position ${order} limit`

interface MetadataRow {
  max_age_seconds: number | null
  max_count: number | null
  truncate_before: string | null
  metadata_revision: string
  deleted: boolean
  tombstoned: boolean
}

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
  /** Whether appends may use a named prepared statement (not behind the embedded server, where connections share a session). */
  private readonly preparedAppend: boolean
  private readonly pool: pg.Pool
  private readonly subscriptions = new Set<Unsubscribe>()

  constructor(private readonly database: Database) {
    this.pool = database.pool
    this.notifiesOnAppend = database.notifiesAcrossConnections
    this.preparedAppend = !database.sharesSessionAcrossConnections
  }

  async appendToStream(stream: string, events: readonly NewEvent[], options: { expectedRevision: ExpectedRevision }): Promise<AppendResult> {
    const batch = validateAppendBatch(stream, events)
    const expected = options.expectedRevision
    assertExpectedRevision(expected)
    const payload = serializeBatch(stream, batch)

    // One statement, so one round trip: the function takes the append lock, checks the revision and inserts inside the
    // statement's own transaction (migrations/004_append_function.sql).
    const outcome = await this.unavailableOnFailure(() => appendWith(this.pool, stream, payload, batch.length, expected, this.preparedAppend))
    if (outcome.status === 'written') return outcome.result

    // Rejected: the client is back in the pool (PGlite has only one), so reading the stream cannot deadlock.
    return this.classifyRejection(stream, batch, expected)
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
    return appendWith(client, stream, serializeBatch(stream, batch), batch.length, expectedRevision, this.preparedAppend)
  }

  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    assertStreamName(stream)
    const backwards = options.direction === 'backwards'
    const limit = maxCountOf(options.maxCount, null)
    const from = options.fromRevision
    if (from !== undefined && (typeof from !== 'bigint' || from < 0n)) throw new RangeError(`readStream(${stream}): fromRevision must be a bigint >= 0, got ${String(from)}`)
    const range = backwards ? '($2::bigint is null or ev.stream_revision <= $2::bigint)' : 'ev.stream_revision >= coalesce($2::bigint, 0)'
    const order = backwards ? 'desc' : 'asc'
    // One round trip: the stream's metadata row (to tell a tombstone from an empty stream) and its visible events.
    const { rows } = await this.unavailableOnFailure(() =>
      this.pool.query<Partial<EventRow> & { tombstoned: boolean | null }>(
        `select m.tombstoned, ${columnsOf('x')} from (values (1)) as one (n)
         left join stream_metadata m on m.stream_name = $1
         left join lateral (
           select ${columnsOf('ev')} from events ev
           where ev.stream_name = $1 and ${range} and ${visible('ev')}
           order by ev.stream_revision ${order} limit $3
         ) x on true
         order by x.stream_revision ${order}`,
        [stream, from?.toString() ?? null, limit],
      ),
    )
    if (rows[0]?.tombstoned) throw new StreamTombstonedError(stream)
    return rows.filter((row): row is EventRow & { tombstoned: boolean | null } => row.position != null).map(toRecordedEvent)
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    return this.select(`${globalRead('e.position > $1')} $2`, [afterOf(options.after), maxCountOf(options.maxCount, DEFAULT_READ_ALL_MAX_COUNT)])
  }

  async readTenantLog(tenantId: string, options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    // Served by the (tenant_id, position) index: other tenants' rows, and their streams' metadata, are never visited.
    return this.select(`${globalRead('e.tenant_id = $1 and e.position > $2')} $3`, [
      assertTenantId(tenantId),
      afterOf(options.after),
      maxCountOf(options.maxCount, DEFAULT_READ_ALL_MAX_COUNT),
    ])
  }

  async readTenantHead(tenantId: string): Promise<RecordedEvent | undefined> {
    // The (tenant_id, position) index read backwards: one probe per event until the newest visible one, usually one.
    const [head] = await this.select(`${globalRead('e.tenant_id = $1', 'desc')} 1`, [assertTenantId(tenantId)])
    return head
  }

  async readEventType(type: string, options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    if (typeof type !== 'string' || type === '') throw new RangeError('readEventType: the event type must be a non-empty string')
    return this.select(`${globalRead('e.event_type = $1 and e.position > $2')} $3`, [
      type,
      afterOf(options.after),
      maxCountOf(options.maxCount, DEFAULT_READ_ALL_MAX_COUNT),
    ])
  }

  async deleteStream(stream: string, options: { expectedRevision: ExpectedRevisionForDelete }): Promise<void> {
    await this.changeLifecycle(stream, options.expectedRevision, false)
  }

  async tombstoneStream(stream: string, options: { expectedRevision: ExpectedRevisionForDelete }): Promise<void> {
    await this.changeLifecycle(stream, options.expectedRevision, true)
  }

  async setStreamMetadata(
    stream: string,
    metadata: StreamMetadata,
    options: { expectedMetadataRevision?: ExpectedMetadataRevision } = {},
  ): Promise<{ metadataRevision: bigint }> {
    const { metadata: valid, expected } = validateMetadataWrite(stream, metadata, options)
    const { rows } = await this.unavailableOnFailure(() =>
      this.pool.query<{ result: string; revision: string | null }>(
        'select result, result_metadata_revision::text as revision from annalist_set_stream_metadata($1, $2, $3, $4, $5)',
        [stream, String(expected), valid.maxAge ?? null, valid.maxCount ?? null, valid.truncateBefore?.toString() ?? null],
      ),
    )
    const row = rows[0]
    if (row?.result === 'tombstoned') throw new StreamTombstonedError(stream)
    if (row?.result === 'wrong_expected') throw new MetadataConcurrencyError(stream, expected, row.revision === null ? 'no_metadata' : BigInt(row.revision))
    if (row?.result !== 'ok' || row.revision === null) throw new EventStoreUnavailableError('postgres', new Error(`setStreamMetadata(${stream}): unexpected result ${JSON.stringify(row)}`))
    return { metadataRevision: BigInt(row.revision) }
  }

  async getStreamMetadata(stream: string): Promise<StreamMetadataResult> {
    assertStreamName(stream)
    const { rows } = await this.unavailableOnFailure(() =>
      this.pool.query<MetadataRow>(
        `select max_age_seconds, max_count, truncate_before::text, metadata_revision::text, deleted, tombstoned
         from stream_metadata where stream_name = $1`,
        [stream],
      ),
    )
    const row = rows[0]
    if (!row) return { metadata: {}, metadataRevision: 'no_metadata', deleted: false }
    if (row.tombstoned) throw new StreamTombstonedError(stream)
    // While soft-deleted, truncate_before is the delete's own doing, not a retention rule: report the deletion instead.
    const truncateBefore = row.deleted || row.truncate_before === null ? undefined : BigInt(row.truncate_before)
    const metadata: StreamMetadata = {
      ...(row.max_age_seconds === null ? {} : { maxAge: row.max_age_seconds }),
      ...(row.max_count === null ? {} : { maxCount: row.max_count }),
      ...(truncateBefore === undefined ? {} : { truncateBefore }),
    }
    return { metadata, metadataRevision: BigInt(row.metadata_revision), deleted: row.deleted }
  }

  async listLifecycleStreams(): Promise<string[]> {
    const { rows } = await this.unavailableOnFailure(() => this.pool.query<{ stream_name: string }>('select stream_name from stream_metadata order by stream_name'))
    return rows.map((row) => row.stream_name)
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

  /** Soft-deletes or tombstones `stream` in one statement under the append lock (migrations/005_stream_lifecycle.sql). */
  private async changeLifecycle(stream: string, expected: ExpectedRevisionForDelete, tombstone: boolean): Promise<void> {
    assertDeleteArguments(stream, expected)
    const { rows } = await this.unavailableOnFailure(() =>
      this.pool.query<{ result: string; revision: string | null; deleted: boolean | null }>(
        'select result, result_revision::text as revision, result_deleted as deleted from annalist_delete_stream($1, $2, $3)',
        [stream, String(expected), tombstone],
      ),
    )
    const row = rows[0]
    if (row?.result === 'tombstoned') throw new StreamTombstonedError(stream)
    if (row?.result === 'wrong_expected') {
      const state = { lastRevision: row.revision === null ? undefined : BigInt(row.revision), deleted: row.deleted === true }
      throw new ConcurrencyError(stream, expected, actualRevisionOf(state))
    }
    if (row?.result !== 'ok') throw new EventStoreUnavailableError('postgres', new Error(`deleting ${stream}: unexpected result ${JSON.stringify(row)}`))
  }

  /**
   * Why an append was rejected, from the stream as it is now: tombstoned, an idempotent repeat, an ID conflict (with
   * visible events, or with events a soft delete or retention hides) or a concurrency conflict.
   */
  private async classifyRejection(stream: string, batch: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    const { rows } = await this.unavailableOnFailure(() =>
      this.pool.query<{ tombstoned: boolean | null; deleted: boolean | null; last_revision: string | null; stored_ids: string[] }>(
        `select m.tombstoned, m.deleted,
                (select max(stream_revision) from events where stream_name = $1)::text as last_revision,
                array(select event_id::text from events where stream_name = $1 and event_id = any($2::uuid[])) as stored_ids
         from (values (1)) as one (n) left join stream_metadata m on m.stream_name = $1`,
        [stream, batch.map((event) => event.eventId)],
      ),
    )
    const row = rows[0]!
    if (row.tombstoned) throw new StreamTombstonedError(stream)
    const visibleEvents = await this.readStream(stream)
    const shown = new Set(visibleEvents.map((event) => event.eventId))
    const state = { lastRevision: row.last_revision === null ? undefined : BigInt(row.last_revision), deleted: row.deleted === true }
    return classifyRejectedWrite(stream, batch, expected, visibleEvents, state, row.stored_ids.filter((id) => !shown.has(id)))
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
      throw asEventStoreError('postgres', error)
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
    tenantSequence: row.tenant_sequence === null ? null : BigInt(row.tenant_sequence),
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
  prepared: boolean,
): Promise<AppendInTransactionOutcome> {
  const result = await queryable.query<{ last_position: string | null; last_revision: string | null }>({
    // A named statement is parsed and planned once per connection; not where connections share one session.
    ...(prepared ? { name: 'annalist_append' } : {}),
    text: 'select last_position::text, last_revision::text from annalist_append($1, $2, $3::jsonb)',
    values: [stream, typeof expected === 'bigint' ? expected.toString() : expected, payload],
  })
  const row = result.rows[0]
  if (!row) return { status: 'rejected' }
  if (row.last_position === null || row.last_revision === null) throw new Error(`append to ${stream}: wrote none of ${count} events`)
  return { status: 'written', result: { nextExpectedRevision: BigInt(row.last_revision), position: BigInt(row.last_position), written: true } }
}
