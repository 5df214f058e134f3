import {
  ANY,
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamNotFoundError,
  WrongExpectedVersionError,
  eventTypeFilter,
  excludeSystemEvents,
  jsonEvent,
  streamNameFilter,
  type AllStreamRecordedEvent,
  type AppendExpectedRevision,
  type Filter,
  type JSONType,
  type RecordedEvent as EsdbRecordedEvent,
} from '@eventstore/db-client'
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
import { tenantCategory } from '../../streams'
import { validateAppendBatch } from '../../appendRules'

const DEFAULT_READ_ALL_MAX_COUNT = 1000
const READ_ALL_PAGE = 500

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

  /** Connects to the server at `connectionString` (e.g. `esdb://localhost:2113?tls=false`); `close()` disposes the client. */
  static connect(connectionString: string): EsdbEventStore {
    return new EsdbEventStore(EventStoreDBClient.connectionString(connectionString), true)
  }

  async appendToStream(stream: string, events: readonly NewEvent[], options: { expectedRevision: ExpectedRevision }): Promise<AppendResult> {
    const batch = validateAppendBatch(stream, events)
    const expected = options.expectedRevision
    const eventData = batch.map((event) =>
      jsonEvent({ id: event.eventId, type: event.type, data: (event.data ?? null) as JSONType, metadata: event.metadata }),
    )
    // Our own duplicate check first (task streams are short): the server only checks the events right after the
    // expected revision, and not at all durably with ANY.
    const before = await this.readStream(stream)
    const ids = new Set(batch.map((event) => event.eventId))
    if (before.some((event) => ids.has(event.eventId))) return classifyRejectedAppend(stream, batch, expected, before)
    try {
      const result = await this.client.appendToStream(stream, eventData, { expectedRevision: toEsdbExpected(expected) })
      return { nextExpectedRevision: result.nextExpectedRevision, position: result.position?.commit ?? -1n, written: true }
    } catch (error) {
      if (!(error instanceof WrongExpectedVersionError)) throw unavailable(error)
    }
    return classifyRejectedAppend(stream, batch, expected, await this.readStream(stream))
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
      if (error instanceof StreamNotFoundError) return []
      throw unavailable(error)
    }
    return events
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    const maxCount = options.maxCount ?? DEFAULT_READ_ALL_MAX_COUNT
    const events: RecordedEvent[] = []
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
          if (isSystemEvent(event)) continue
          events.push(toRecordedEvent(event))
          if (events.length >= maxCount) break
        }
        if (read < READ_ALL_PAGE) break
      }
    } catch (error) {
      throw unavailable(error)
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

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((unsubscribe) => unsubscribe().catch(() => undefined)))
    if (this.ownsClient) await this.client.dispose()
  }

  /**
   * Reads $all after `after` through a server-side filter until `maxCount` matches or the end of the log as it was when
   * the read began. readAll takes no filter in this client, so this is a catch-up subscription that stops at the end
   * (the server's caught-up signal, or a filter checkpoint at or past that end).
   */
  private async readFiltered(filter: Filter, options: ReadAllOptions): Promise<RecordedEvent[]> {
    const maxCount = options.maxCount ?? DEFAULT_READ_ALL_MAX_COUNT
    const after = options.after
    if (maxCount === 0) return []
    try {
      let end: bigint | undefined
      for await (const resolved of this.client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 })) end = resolved.event?.position.commit
      if (end === undefined || (after !== undefined && after >= end)) return []
      const endOfLog = end

      const events: RecordedEvent[] = []
      await new Promise<void>((resolve, reject) => {
        const subscription = this.client.subscribeToAll({
          fromPosition: after === undefined ? START : { commit: after, prepare: after },
          filter: { ...filter, checkpointReached: (_subscription, position) => (position.commit >= endOfLog ? finish() : undefined) },
        })
        let done = false
        const finish = (error?: unknown) => {
          if (done) return
          done = true
          subscription.unsubscribe().then(
            () => (error === undefined ? resolve() : reject(error)),
            () => (error === undefined ? resolve() : reject(error)),
          )
        }
        subscription.on('data', (resolved) => {
          const event = resolved.event
          if (done || !event) return
          const position = event.position.commit
          if (after !== undefined && position <= after) return
          if (position > endOfLog) return finish()
          events.push(toRecordedEvent(event))
          if (events.length >= maxCount || position === endOfLog) finish()
        })
        subscription.on('caughtUp', () => finish())
        subscription.on('error', (error) => finish(error))
      })
      return events
    } catch (error) {
      throw unavailable(error)
    }
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
    recordedAt: event.created,
  }
}

function unavailable(error: unknown): Error {
  if (error instanceof ConcurrencyError || error instanceof EventIdConflictError || error instanceof EventStoreUnavailableError) return error
  return new EventStoreUnavailableError('esdb', error)
}
