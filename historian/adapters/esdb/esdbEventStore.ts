import {
  ANY,
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedVersionError,
  eventTypeFilter,
  excludeSystemEvents,
  jsonEvent,
  metastreamOf,
  streamNameFilter,
  type AllStreamRecordedEvent,
  type AppendExpectedRevision,
  type CurrentRevision,
  type ExpectedRevision as EsdbExpectedRevision,
  type Filter,
  type JSONType,
  type RecordedEvent as EsdbRecordedEvent,
} from '@eventstore/db-client'
import { esdbClientConnectionString } from './connectionString'
import { assertStreamName, validateAppendBatch } from '../../appendRules'
import {
  asEventStoreError,
  ConcurrencyError,
  MetadataConcurrencyError,
  UnsupportedStoreOperationError,
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
import { tenantCategory } from '../../streams'

const DEFAULT_READ_ALL_MAX_COUNT = 1000
const READ_ALL_PAGE = 500
/** EventStoreDB marks a soft-deleted stream with `$tb` = long.MaxValue, which JSON.parse reads as about 2^63. */
const SOFT_DELETED_TRUNCATE_BEFORE = 2 ** 62

/**
 * The event store on EventStoreDB / KurrentDB (selected by ESDB_CONNECTION_STRING). Thin: it passes the same contract
 * suite as the PostgreSQL store when a server is available. Where it differs from PostgreSQL:
 * - Global positions are byte offsets in the transaction log (the commit position; for gRPC appends every event is its
 *   own commit, so commit = prepare and positions are strictly increasing), not 1, 2, 3. They are opaque and gappy.
 * - The server's own duplicate-ID check is durable only with an explicit expected revision (with ANY it relies on an
 *   in-memory cache). So this adapter checks the stream for the batch's IDs itself before appending, and every
 *   Annalist append carries an explicit revision; a concurrent identical append may still both report `written: true`
 *   (the server accepts the second idempotently without saying so), though the events are stored once.
 * - Tenant logs and event types are read from $all with server-side filters (see readTenantLog), and onAppend is a
 *   live $all subscription.
 * - $all keeps the events of deleted, tombstoned and truncated streams until a scavenge; the port hides them on every
 *   read, so $all reads and subscribeToAll check each stream's first visible revision (one stream read per stream per
 *   read, see StreamVisibility). Retention itself is the server's own ($maxAge, $maxCount, $tb in `$$<stream>`).
 * - `tenantSequence` is always null. EventStoreDB's own per-tenant numbering is the event number in the
 *   `$ce-tenant_<t>` category stream, which the $by_category system projection writes asynchronously after the commit
 *   (and only where system projections run), so an append cannot return it and a read cannot rely on it being there
 *   yet. Instead the audit projection numbers each tenant's events itself, counting them in $all commit order, which
 *   is the same order the PostgreSQL store numbers them in (projections/auditTimeline/projection.ts, docs/ordering.md).
 */
export class EsdbEventStore implements EventStore {
  readonly kind = 'esdb' as const
  /** Every client hears every append through its $all subscription. */
  readonly notifiesOnAppend = true
  private readonly subscriptions = new Set<Unsubscribe>()

  constructor(
    private readonly client: EventStoreDBClient,
    private readonly ownsClient = false,
  ) {}

  /**
   * Connects to the server at `connectionString` (e.g. `esdb://localhost:2113?tls=false`, or KurrentDB's
   * `kurrentdb://...`, which the client reads as `esdb://`); `close()` disposes the client.
   */
  static connect(connectionString: string): EsdbEventStore {
    return new EsdbEventStore(EventStoreDBClient.connectionString(esdbClientConnectionString(connectionString)), true)
  }

  async appendToStream(stream: string, events: readonly NewEvent[], options: { expectedRevision: ExpectedRevision }): Promise<AppendResult> {
    const batch = validateAppendBatch(stream, events)
    const expected = options.expectedRevision
    const eventData = batch.map((event) =>
      jsonEvent({ id: event.eventId, type: event.type, data: (event.data ?? null) as JSONType, metadata: event.metadata }),
    )
    // Our own duplicate check first (task streams are short): the server only checks the events right after the
    // expected revision, and not at all durably with ANY. Reading also refuses a tombstoned stream before any write.
    // With 'no_stream' there is nothing readable to check: the server refuses the append if the stream exists, and the
    // rejection is classified from the stream then; a tombstoned stream answers StreamDeleted (docs/event-store-contract.md).
    const before = expected === 'no_stream' ? [] : await this.readStream(stream)
    const ids = new Set(batch.map((event) => event.eventId))
    if (before.some((event) => ids.has(event.eventId))) return this.classifyRejection(stream, batch, expected, undefined)
    try {
      const result = await this.client.appendToStream(stream, eventData, { expectedRevision: toEsdbExpected(expected) })
      return { nextExpectedRevision: result.nextExpectedRevision, position: result.position?.commit ?? -1n, written: true }
    } catch (error) {
      if (error instanceof StreamDeletedError) {
        // The server answers 'stream_exists' on a soft-deleted stream with StreamDeleted; the port calls that a conflict.
        if (expected === 'stream_exists' && !(await this.isTombstoned(stream))) throw new ConcurrencyError(stream, expected, 'no_stream')
        throw new StreamTombstonedError(stream)
      }
      if (!(error instanceof WrongExpectedVersionError)) throw asEventStoreError('esdb', error)
      return this.classifyRejection(stream, batch, expected, error.actualVersion)
    }
  }

  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    if (options.maxCount === 0) return []
    const events: RecordedEvent[] = []
    try {
      const read = this.client.readStream(stream, {
        direction: options.direction === 'backwards' ? BACKWARDS : FORWARDS,
        fromRevision: options.fromRevision ?? (options.direction === 'backwards' ? END : START),
        ...(options.maxCount === undefined ? {} : { maxCount: options.maxCount }),
      })
      for await (const resolved of read) if (resolved.event) events.push(toRecordedEvent(resolved.event))
    } catch (error) {
      // Not found: never written, or soft-deleted. Deleted: tombstoned.
      if (error instanceof StreamNotFoundError) return []
      if (error instanceof StreamDeletedError) throw new StreamTombstonedError(stream)
      throw asEventStoreError('esdb', error)
    }
    return events
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    const maxCount = options.maxCount ?? DEFAULT_READ_ALL_MAX_COUNT
    const events: RecordedEvent[] = []
    const visibility = new StreamVisibility(this.client)
    let cursor = options.after
    try {
      while (events.length < maxCount) {
        let read = 0
        const fromPosition = cursor === undefined ? START : { commit: cursor, prepare: cursor }
        for await (const resolved of this.client.readAll({ fromPosition, maxCount: READ_ALL_PAGE })) {
          read += 1
          const event = resolved.event
          // fromPosition is inclusive while `after` is exclusive; system events ($-types, $-streams) are not ours.
          if (!event || (cursor !== undefined && event.position.commit <= cursor)) continue
          cursor = event.position.commit
          if (isSystemEvent(event) || !(await visibility.isVisible(event))) continue
          events.push(toRecordedEvent(event))
          if (events.length >= maxCount) break
        }
        if (read < READ_ALL_PAGE) break
      }
    } catch (error) {
      throw asEventStoreError('esdb', error)
    }
    return events
  }

  /**
   * One tenant's log: $all read through the server-side stream-name prefix filter `tenant_<id>-`. Chosen over the
   * `$ce-tenant_<id>` category stream because the filter needs no system projections, is consistent with $all at once
   * (the projection lags), and yields real $all positions (links in $ce would need resolveLinkTos and carry their own).
   * Other tenants' events never leave the server.
   */
  async readTenantLog(tenantId: string, options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    return this.readFiltered(streamNameFilter({ prefixes: [`${tenantCategory(tenantId)}-`] }), options)
  }

  /**
   * The tenant's newest visible event: the tenant's log read forwards to its end through the server-side filter of
   * readTenantLog, keeping the last event. This client reads $all backwards only without a filter, which would bring
   * other tenants' events to this process; reading the tenant's own events instead costs a pass over them, which an
   * export (the caller) makes anyway.
   */
  async readTenantHead(tenantId: string): Promise<RecordedEvent | undefined> {
    let head: RecordedEvent | undefined
    for (;;) {
      const page = await this.readTenantLog(tenantId, { after: head?.position, maxCount: DEFAULT_READ_ALL_MAX_COUNT })
      if (page.length === 0) return head
      head = page[page.length - 1]
    }
  }

  /** One event type across tenants: $all through a server-side event-type filter (exact match). */
  async readEventType(type: string, options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    if (typeof type !== 'string' || type === '') throw new RangeError('readEventType: the event type must be a non-empty string')
    return this.readFiltered(eventTypeFilter({ regex: `^${type.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$` }), options)
  }

  async onAppend(listener: () => void): Promise<Unsubscribe> {
    const subscription = this.client.subscribeToAll({ fromPosition: END, filter: excludeSystemEvents() })
    subscription.on('data', () => listener())
    subscription.on('error', () => undefined) // a hint only: readers poll as well
    const unsubscribe: Unsubscribe = async () => {
      if (this.subscriptions.delete(unsubscribe)) await subscription.unsubscribe()
    }
    this.subscriptions.add(unsubscribe)
    return unsubscribe
  }

  async deleteStream(stream: string, options: { expectedRevision: ExpectedRevisionForDelete }): Promise<void> {
    await this.changeLifecycle(stream, options.expectedRevision, (expectedRevision) => this.client.deleteStream(stream, { expectedRevision }))
  }

  async tombstoneStream(stream: string, options: { expectedRevision: ExpectedRevisionForDelete }): Promise<void> {
    await this.changeLifecycle(stream, options.expectedRevision, (expectedRevision) => this.client.tombstoneStream(stream, { expectedRevision }))
  }

  /** Writes the server's own retention metadata ($maxAge, $maxCount, $tb) to `$$<stream>`, replacing what was there. */
  async setStreamMetadata(
    stream: string,
    metadata: StreamMetadata,
    options: { expectedMetadataRevision?: ExpectedMetadataRevision } = {},
  ): Promise<{ metadataRevision: bigint }> {
    const { metadata: valid, expected } = validateMetadataWrite(stream, metadata, options)
    try {
      const result = await this.client.setStreamMetadata(
        stream,
        {
          ...(valid.maxAge === undefined ? {} : { maxAge: valid.maxAge }),
          ...(valid.maxCount === undefined ? {} : { maxCount: valid.maxCount }),
          ...(valid.truncateBefore === undefined ? {} : { truncateBefore: Number(valid.truncateBefore) }),
        },
        { expectedRevision: expected === 'no_metadata' ? NO_STREAM : expected === 'any' ? ANY : expected },
      )
      return { metadataRevision: result.nextExpectedRevision }
    } catch (error) {
      if (error instanceof StreamDeletedError) throw new StreamTombstonedError(stream)
      if (error instanceof WrongExpectedVersionError) {
        const actual = revisionOf(error.actualVersion)
        throw new MetadataConcurrencyError(stream, expected, actual === undefined ? 'no_metadata' : actual)
      }
      throw asEventStoreError('esdb', error)
    }
  }

  /** Reads the last event of `$$<stream>` (the client's own getStreamMetadata reports a log position as the revision). */
  async getStreamMetadata(stream: string): Promise<StreamMetadataResult> {
    assertStreamName(stream)
    try {
      for await (const resolved of this.client.readStream(metastreamOf(stream), { direction: BACKWARDS, fromRevision: END, maxCount: 1 })) {
        if (resolved.event) return toMetadataResult(resolved.event.revision, resolved.event.data)
      }
    } catch (error) {
      if (error instanceof StreamDeletedError) throw new StreamTombstonedError(stream)
      if (!(error instanceof StreamNotFoundError)) throw asEventStoreError('esdb', error)
    }
    return { metadata: {}, metadataRevision: 'no_metadata', deleted: false }
  }

  /**
   * The server's own catch-up subscription to $all from the checkpoint (exclusive), without system events, and without
   * the events every read hides (deleted, tombstoned, truncated streams: checked per stream, trusted for a second).
   */
  /** Refused: listing every `$$<stream>` would mean reading the whole `$streams` projection; see docs/lifecycle.md. */
  async listLifecycleStreams(): Promise<string[]> {
    throw new UnsupportedStoreOperationError(
      'esdb',
      'listLifecycleStreams',
      'EventStoreDB keeps stream metadata in one $$<stream> stream each and has no index of them; check each stream the decisions name instead (annalist lifecycle check does)',
    )
  }


  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((unsubscribe) => unsubscribe().catch(() => undefined)))
    if (this.ownsClient) await this.client.dispose()
  }

  /** Runs a soft delete or tombstone and translates the server's refusals into the port's errors. */
  private async changeLifecycle(
    stream: string,
    expected: ExpectedRevisionForDelete,
    run: (expectedRevision: EsdbExpectedRevision) => Promise<unknown>,
  ): Promise<void> {
    assertDeleteArguments(stream, expected)
    try {
      await run(expected === 'no_stream' ? NO_STREAM : expected === 'any' ? ANY : expected)
    } catch (error) {
      if (error instanceof StreamDeletedError) throw new StreamTombstonedError(stream)
      if (!(error instanceof WrongExpectedVersionError)) throw asEventStoreError('esdb', error)
      const { deleted } = await this.getStreamMetadata(stream)
      throw new ConcurrencyError(stream, expected, actualRevisionOf({ lastRevision: revisionOf(error.actualVersion), deleted }))
    }
  }

  /** Why an append was refused, from the stream as it reads now and the revision the server reported (if it did). */
  private async classifyRejection(
    stream: string,
    batch: readonly NewEvent[],
    expected: ExpectedRevision,
    serverActual: CurrentRevision | undefined,
  ): Promise<AppendResult> {
    const visible = await this.readStream(stream)
    const { deleted } = await this.getStreamMetadata(stream)
    const lastRevision = serverActual === undefined ? visible[visible.length - 1]?.revision : revisionOf(serverActual)
    // Events hidden by a delete or retention cannot be read back here, so their IDs are left to the server.
    return classifyRejectedWrite(stream, batch, expected, visible, { lastRevision, deleted }, [])
  }

  private async isTombstoned(stream: string): Promise<boolean> {
    try {
      await this.readStream(stream, { maxCount: 1 })
      return false
    } catch (error) {
      if (error instanceof StreamTombstonedError) return true
      throw error
    }
  }

  /** Reads $all after `after` through a server-side filter, keeping only visible events, until `maxCount` or the end. */
  private async readFiltered(filter: Filter, options: ReadAllOptions): Promise<RecordedEvent[]> {
    const maxCount = options.maxCount ?? DEFAULT_READ_ALL_MAX_COUNT
    if (maxCount === 0) return []
    const visibility = new StreamVisibility(this.client)
    const events: RecordedEvent[] = []
    try {
      let end: bigint | undefined
      for await (const resolved of this.client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 })) end = resolved.event?.position.commit
      if (end === undefined) return []
      let after = options.after
      while (events.length < maxCount && (after === undefined || after < end)) {
        const wanted = maxCount - events.length
        const page = await this.readFilteredPage(filter, after, wanted, end)
        for (const event of page) if (await visibility.isVisible(event)) events.push(toRecordedEvent(event))
        if (page.length < wanted) break
        after = page[page.length - 1]!.position.commit
      }
    } catch (error) {
      throw asEventStoreError('esdb', error)
    }
    return events
  }

  /**
   * Up to `maxCount` events of $all after `after` that pass a server-side filter, up to the end of the log as it was
   * when the read began. readAll takes no filter in this client, so this is a catch-up subscription that stops at that
   * end (the server's caught-up signal, or a filter checkpoint at or past it).
   */
  private readFilteredPage(filter: Filter, after: bigint | undefined, maxCount: number, endOfLog: bigint): Promise<AllStreamRecordedEvent[]> {
    const events: AllStreamRecordedEvent[] = []
    return new Promise<AllStreamRecordedEvent[]>((resolve, reject) => {
      const subscription = this.client.subscribeToAll({
        fromPosition: after === undefined ? START : { commit: after, prepare: after },
        filter: { ...filter, checkpointReached: (_subscription, position) => (position.commit >= endOfLog ? finish() : undefined) },
      })
      let done = false
      const finish = (error?: unknown) => {
        if (done) return
        done = true
        subscription.unsubscribe().then(
          () => (error === undefined ? resolve(events) : reject(error)),
          () => (error === undefined ? resolve(events) : reject(error)),
        )
      }
      subscription.on('data', (resolved) => {
        const event = resolved.event
        if (done || !event) return
        const position = event.position.commit
        if (after !== undefined && position <= after) return
        if (position > endOfLog) return finish()
        events.push(event)
        if (events.length >= maxCount || position === endOfLog) finish()
      })
      subscription.on('caughtUp', () => finish())
      subscription.on('error', (error) => finish(error))
    })
  }
}

function toEsdbExpected(expected: ExpectedRevision): AppendExpectedRevision {
  if (expected === 'no_stream') return NO_STREAM
  if (expected === 'stream_exists') return STREAM_EXISTS
  if (expected === 'any') return ANY
  return expected
}

function isSystemEvent(event: AllStreamRecordedEvent): boolean {
  return event.type.startsWith('$') || event.streamId.startsWith('$')
}

function toRecordedEvent(event: EsdbRecordedEvent | AllStreamRecordedEvent): RecordedEvent {
  return {
    eventId: event.id,
    type: event.type,
    data: event.data,
    metadata: (event.metadata ?? {}) as Record<string, unknown>,
    streamName: event.streamId,
    revision: event.revision,
    // Stream reads carry the position on servers after 22.6.0; older ones leave it out (-1 then).
    position: event.position?.commit ?? -1n,
    // Not numbered at append here (see the class comment): the audit projection numbers a tenant's events itself.
    tenantSequence: null,
    recordedAt: event.created,
  }
}

/** A revision the server reported: undefined for no stream (NO_STREAM, or -1 in older servers' error metadata). */
function revisionOf(current: CurrentRevision): bigint | undefined {
  return typeof current === 'bigint' && current >= 0n ? current : undefined
}

/** The port's view of a `$$<stream>` event: retention fields, and soft deletion read from the `$tb` marker. */
function toMetadataResult(revision: bigint, data: unknown): StreamMetadataResult {
  const raw = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>
  const wholeNumber = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value)
  const truncateBefore = raw.$tb
  const deleted = typeof truncateBefore === 'number' && truncateBefore >= SOFT_DELETED_TRUNCATE_BEFORE
  const metadata: StreamMetadata = {
    ...(wholeNumber(raw.$maxAge) ? { maxAge: raw.$maxAge } : {}),
    ...(wholeNumber(raw.$maxCount) ? { maxCount: raw.$maxCount } : {}),
    ...(!deleted && wholeNumber(truncateBefore) ? { truncateBefore: BigInt(truncateBefore) } : {}),
  }
  return { metadata, metadataRevision: revision, deleted }
}

/**
 * Which events of a stream the port shows now. Every retention rule (soft delete, $tb, $maxCount, $maxAge) hides a
 * prefix of the stream, so the stream's first readable revision decides; a stream that cannot be read (deleted,
 * tombstoned, all expired) shows nothing. Learnt once per stream for the one read it serves.
 */
class StreamVisibility {
  private readonly firstVisible = new Map<string, Promise<bigint | undefined>>()

  constructor(private readonly client: EventStoreDBClient) {}

  async isVisible(event: AllStreamRecordedEvent): Promise<boolean> {
    let revision = this.firstVisible.get(event.streamId)
    if (!revision) {
      if (this.firstVisible.size >= 10_000) this.firstVisible.clear()
      revision = this.firstVisibleRevision(event.streamId)
      this.firstVisible.set(event.streamId, revision)
    }
    const first = await revision
    return first !== undefined && event.revision >= first
  }

  private async firstVisibleRevision(stream: string): Promise<bigint | undefined> {
    try {
      for await (const resolved of this.client.readStream(stream, { direction: FORWARDS, fromRevision: START, maxCount: 1 })) {
        if (resolved.event) return resolved.event.revision
      }
      return undefined
    } catch (error) {
      if (error instanceof StreamNotFoundError || error instanceof StreamDeletedError) return undefined
      throw error
    }
  }
}

