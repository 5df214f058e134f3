import { validateAppendBatch, assertStreamName } from '../appendRules'
import {
  ConcurrencyError,
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
} from '../port'
import {
  actualRevisionOf,
  assertDeleteArguments,
  classifyRejectedWrite,
  matchesMetadataRevision,
  matchesStreamState,
  validateMetadataWrite,
  type StreamState,
} from '../streamState'
import { assertTenantId, tenantOfStream } from '../streams'

/** One stream as the memory store keeps it: every event ever appended (hidden ones too) and its lifecycle. */
interface MemoryStream {
  readonly events: RecordedEvent[]
  metadata: StreamMetadata
  metadataRevision: bigint | undefined
  deleted: boolean
  tombstoned: boolean
}

const DEFAULT_READ_ALL_MAX_COUNT = 1_000

/**
 * A non-durable event store held in this process's memory. It is the benchmark's "without historian" baseline: the
 * pipeline still needs to read back what its steps produced, so the baseline keeps events, but writes nothing anywhere.
 * It passes the same contract suite as the durable stores (soft deletes, tombstones, retention, subscriptions).
 * Never use it where events must survive: a restart loses them all.
 */
export class InMemoryEventStore implements EventStore {
  readonly kind = 'memory' as const
  readonly notifiesOnAppend = true
  private readonly streams = new Map<string, MemoryStream>()
  private readonly log: RecordedEvent[] = []
  /** The last tenant sequence handed out per tenant (RecordedEvent.tenantSequence). */
  private readonly tenantSequences = new Map<string, bigint>()
  private readonly listeners = new Set<() => void>()

  async appendToStream(stream: string, events: readonly NewEvent[], options: { expectedRevision: ExpectedRevision }): Promise<AppendResult> {
    const batch = validateAppendBatch(stream, events)
    const entry = this.writable(stream)
    const state = stateOf(entry)
    const expected = options.expectedRevision
    const ids = new Set(entry?.events.map((event) => event.eventId))
    const repeats = batch.filter((event) => ids.has(event.eventId)).map((event) => event.eventId)
    if (!matchesStreamState(expected, state) || repeats.length > 0) {
      const visible = entry ? this.visible(entry) : []
      const shown = new Set(visible.map((event) => event.eventId))
      return classifyRejectedWrite(stream, batch, expected, visible, state, repeats.filter((id) => !shown.has(id)))
    }
    const target = entry ?? this.create(stream)
    const first = (state.lastRevision ?? -1n) + 1n
    const tenant = tenantOfStream(stream)
    batch.forEach((event, index) => {
      const recorded: RecordedEvent = {
        ...event,
        streamName: stream,
        revision: first + BigInt(index),
        position: BigInt(this.log.length + 1),
        tenantSequence: tenant === undefined ? null : this.nextTenantSequence(tenant),
        recordedAt: new Date(),
      }
      target.events.push(recorded)
      this.log.push(recorded)
    })
    if (target.deleted) {
      // Written again after a soft delete: the earlier events stay below truncate-before, as in EventStoreDB.
      target.deleted = false
      target.metadataRevision = nextMetadataRevision(target)
    }
    this.notify()
    const last = target.events[target.events.length - 1]!
    return { nextExpectedRevision: last.revision, position: last.position, written: true }
  }

  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    assertStreamName(stream)
    const entry = this.writable(stream)
    const stored = entry ? this.visible(entry) : []
    const ordered = options.direction === 'backwards' ? [...stored].reverse() : stored
    const from = options.fromRevision
    const selected = from === undefined ? ordered : ordered.filter((event) => (options.direction === 'backwards' ? event.revision <= from : event.revision >= from))
    return selected.slice(0, options.maxCount ?? Number.MAX_SAFE_INTEGER)
  }

  async readTenantLog(tenantId: string, options?: ReadAllOptions): Promise<RecordedEvent[]> {
    const prefix = `tenant_${assertTenantId(tenantId)}-`
    return this.select((event) => event.streamName.startsWith(prefix), options)
  }

  async readTenantHead(tenantId: string): Promise<RecordedEvent | undefined> {
    return (await this.readTenantLog(tenantId, { maxCount: Number.MAX_SAFE_INTEGER })).at(-1)
  }

  async readEventType(type: string, options?: ReadAllOptions): Promise<RecordedEvent[]> {
    if (typeof type !== 'string' || type === '') throw new RangeError('readEventType: the event type must be a non-empty string')
    return this.select((event) => event.type === type, options)
  }

  async readAll(options?: ReadAllOptions): Promise<RecordedEvent[]> {
    return this.select(() => true, options)
  }

  async onAppend(listener: () => void): Promise<Unsubscribe> {
    const call = () => listener()
    this.listeners.add(call)
    return async () => void this.listeners.delete(call)
  }

  async deleteStream(stream: string, options: { expectedRevision: ExpectedRevisionForDelete }): Promise<void> {
    const entry = this.checkedForDelete(stream, options.expectedRevision)
    const target = entry ?? this.create(stream)
    target.metadata = { ...target.metadata, truncateBefore: (stateOf(entry).lastRevision ?? -1n) + 1n }
    target.deleted = true
    target.metadataRevision = nextMetadataRevision(target)
  }

  async tombstoneStream(stream: string, options: { expectedRevision: ExpectedRevisionForDelete }): Promise<void> {
    const entry = this.checkedForDelete(stream, options.expectedRevision)
    const target = entry ?? this.create(stream)
    target.tombstoned = true
    target.deleted = false
  }

  async setStreamMetadata(
    stream: string,
    metadata: StreamMetadata,
    options: { expectedMetadataRevision?: ExpectedMetadataRevision } = {},
  ): Promise<{ metadataRevision: bigint }> {
    const { metadata: valid, expected } = validateMetadataWrite(stream, metadata, options)
    const entry = this.writable(stream)
    const actual = entry?.metadataRevision ?? 'no_metadata'
    if (!matchesMetadataRevision(expected, actual)) throw new MetadataConcurrencyError(stream, expected, actual)
    const target = entry ?? this.create(stream)
    // New metadata ends a pending soft delete, but the deleted events stay hidden (as EventStoreDB re-adds its $tb).
    const hiddenBefore = target.deleted ? target.metadata.truncateBefore : undefined
    const truncateBefore = hiddenBefore !== undefined && (valid.truncateBefore ?? 0n) < hiddenBefore ? hiddenBefore : valid.truncateBefore
    target.metadata = { ...valid, ...(truncateBefore === undefined ? {} : { truncateBefore }) }
    target.deleted = false
    target.metadataRevision = nextMetadataRevision(target)
    return { metadataRevision: target.metadataRevision }
  }

  async getStreamMetadata(stream: string): Promise<StreamMetadataResult> {
    assertStreamName(stream)
    const entry = this.writable(stream)
    if (!entry || entry.metadataRevision === undefined) return { metadata: {}, metadataRevision: 'no_metadata', deleted: false }
    const { truncateBefore, ...rest } = entry.metadata
    // While soft-deleted, the truncate-before is the delete's own doing, not a retention rule: report the deletion.
    const metadata = entry.deleted || truncateBefore === undefined ? rest : { ...rest, truncateBefore }
    return { metadata, metadataRevision: entry.metadataRevision, deleted: entry.deleted }
  }

  async listLifecycleStreams(): Promise<string[]> {
    const withState = [...this.streams].filter(([, entry]) => entry.tombstoned || entry.metadataRevision !== undefined)
    return withState.map(([name]) => name).sort()
  }


  async close(): Promise<void> {
    this.listeners.clear()
  }

  /** The stream's entry, or undefined if it was never touched; refuses a tombstoned stream. */
  private writable(stream: string): MemoryStream | undefined {
    const entry = this.streams.get(stream)
    if (entry?.tombstoned) throw new StreamTombstonedError(stream)
    return entry
  }

  private checkedForDelete(stream: string, expected: ExpectedRevisionForDelete): MemoryStream | undefined {
    assertDeleteArguments(stream, expected)
    const entry = this.writable(stream)
    const state = stateOf(entry)
    if (!matchesStreamState(expected, state)) throw new ConcurrencyError(stream, expected, actualRevisionOf(state))
    return entry
  }

  /** Hands out the tenant's next sequence number; called only once an append is accepted, so none is ever wasted. */
  private nextTenantSequence(tenant: string): bigint {
    const next = (this.tenantSequences.get(tenant) ?? 0n) + 1n
    this.tenantSequences.set(tenant, next)
    return next
  }

  private create(stream: string): MemoryStream {
    const entry: MemoryStream = { events: [], metadata: {}, metadataRevision: undefined, deleted: false, tombstoned: false }
    this.streams.set(stream, entry)
    return entry
  }

  /** The events of `entry` that reads show now, by the same rules as the PostgreSQL store's SQL. */
  private visible(entry: MemoryStream): RecordedEvent[] {
    if (entry.tombstoned) return []
    const { maxAge, maxCount, truncateBefore } = entry.metadata
    const last = entry.events[entry.events.length - 1]?.revision ?? -1n
    const oldest = maxAge === undefined ? undefined : Date.now() - maxAge * 1_000
    return entry.events.filter(
      (event) =>
        (truncateBefore === undefined || event.revision >= truncateBefore) &&
        (maxCount === undefined || event.revision > last - BigInt(maxCount)) &&
        (oldest === undefined || event.recordedAt.getTime() > oldest),
    )
  }

  private select(filter: (event: RecordedEvent) => boolean, options: ReadAllOptions = {}): RecordedEvent[] {
    const after = options.after ?? 0n
    const limit = options.maxCount ?? DEFAULT_READ_ALL_MAX_COUNT
    const visibleByStream = new Map<string, Set<RecordedEvent>>()
    const isVisible = (event: RecordedEvent) => {
      let visible = visibleByStream.get(event.streamName)
      if (!visible) {
        visible = new Set(this.visible(this.streams.get(event.streamName)!))
        visibleByStream.set(event.streamName, visible)
      }
      return visible.has(event)
    }
    const selected: RecordedEvent[] = []
    for (const event of this.log) {
      if (selected.length >= limit) break
      if (event.position > after && filter(event) && isVisible(event)) selected.push(event)
    }
    return selected
  }

  private notify(): void {
    for (const listener of this.listeners) {
      try {
        listener()
      } catch {
        // A hint only: a failing listener must not fail the append.
      }
    }
  }
}

function stateOf(entry: MemoryStream | undefined): StreamState {
  return { lastRevision: entry?.events[entry.events.length - 1]?.revision, deleted: entry?.deleted ?? false }
}

function nextMetadataRevision(entry: MemoryStream): bigint {
  return entry.metadataRevision === undefined ? 0n : entry.metadataRevision + 1n
}
