import { ComplianceEvent, readEvent, validateEvent, type AnnalistEvent } from './events'

const COMPLIANCE_EVENT_TYPES: ReadonlySet<string> = new Set(ComplianceEvent.options.map((option) => option.shape.type.value))
import { anchorHash, linkHash, storedIntegrity } from './integrity/chainHash'
import { ChainTailError, MissingIntegrityKeyError } from './integrity/integrityErrors'
import type { TenantKeyRing } from './integrity/tenantKeyRing'
import type { AppendResult, EventStore, ReadAllOptions, RecordedEvent } from './port'
import { assertTenantId, complianceStreamName, taskStreamName } from './streams'

/** A domain event as stored, with its place in the log. */
export interface StoredEvent<E extends AnnalistEvent = AnnalistEvent> {
  readonly eventId: string
  readonly streamName: string
  readonly revision: bigint
  readonly position: bigint
  /** Its place in its tenant's log (RecordedEvent.tenantSequence): null outside a tenant stream and on EventStoreDB. */
  readonly tenantSequence: bigint | null
  readonly recordedAt: Date
  readonly event: E
}

/**
 * Where the next append to a stream goes: the revision to expect, and the hash-chain link of the event at that revision
 * (`lastHash`, its `metadata.integrity.hash`), which the first appended event chains from. A stream that does not exist
 * yet has no `lastHash`: its first event chains from the tenant-keyed anchor.
 */
export interface StreamTail {
  readonly revision: bigint | 'no_stream'
  readonly lastHash?: string
}

/** One task's stream as read now: its events, and its tail, which is where the next append goes. */
export interface TaskStream extends StreamTail {
  readonly streamName: string
  readonly events: readonly StoredEvent[]
}

/** The tail of a stream whose last stored event is `last` (undefined: the stream does not exist). */
export function streamTail(last: RecordedEvent | undefined): StreamTail {
  if (!last) return { revision: 'no_stream' }
  return { revision: last.revision, lastHash: storedIntegrity(last.metadata)?.hash }
}

/** Optional collaborators of a Historian. */
export interface HistorianOptions {
  /** The tenant-scoped integrity keys; required to append (every appended event extends its stream's hash chain). */
  readonly keyRing?: TenantKeyRing
}

/** A domain event ready to append, with its deterministic ID. */
export interface PendingEvent {
  readonly eventId: string
  readonly event: AnnalistEvent
}

export function toStoredEvent(recorded: RecordedEvent): StoredEvent {
  return {
    eventId: recorded.eventId,
    streamName: recorded.streamName,
    revision: recorded.revision,
    position: recorded.position,
    tenantSequence: recorded.tenantSequence,
    recordedAt: recorded.recordedAt,
    event: readEvent(recorded),
  }
}

/**
 * The typed face of the event store: validates every event against its schema before anything is written,
 * and upcasts every event it reads. Tenant and task IDs are checked before any I/O. Every append extends the
 * stream's tenant-keyed hash chain (docs/tamper-evidence.md; historian/integrity/verifyChain.ts checks it).
 */
export class Historian {
  readonly keyRing: TenantKeyRing | undefined

  constructor(
    readonly store: EventStore,
    options: HistorianOptions = {},
  ) {
    this.keyRing = options.keyRing
  }

  async readTask(tenantId: string, taskId: string): Promise<TaskStream> {
    const streamName = taskStreamName(tenantId, taskId)
    const recorded = await this.store.readStream(streamName)
    return { streamName, ...streamTail(recorded[recorded.length - 1]), events: recorded.map(toStoredEvent) }
  }

  /**
   * Appends `pending` right after `after` (the stream's tail as the caller read it, e.g. a TaskStream), with
   * `after.revision` as the expected revision, so the store refuses the append if anything was appended since; the
   * caller re-reads and passes the new tail. Each event's `metadata.integrity` is computed here from the tail: event i
   * gets revision `after.revision + 1 + i` (or `i` for a new stream) and chains from the event before it.
   */
  async appendToTask(tenantId: string, taskId: string, pending: readonly PendingEvent[], after: StreamTail): Promise<AppendResult> {
    const streamName = taskStreamName(tenantId, taskId)
    return this.appendChained(streamName, tenantId, pending, after, (event) => {
      if (event.metadata.tenantId !== tenantId || event.metadata.taskId !== taskId) {
        throw new RangeError(`event ${event.type} names tenant ${event.metadata.tenantId}/${event.metadata.taskId} but is being appended to ${streamName}`)
      }
    })
  }

  /** The tenant's compliance stream (complianceStreamName) as read now: its events and its tail. */
  async readCompliance(tenantId: string): Promise<{ readonly streamName: string; readonly tail: StreamTail; readonly events: readonly StoredEvent[] }> {
    const streamName = complianceStreamName(tenantId)
    const recorded = await this.store.readStream(streamName)
    return { streamName, tail: streamTail(recorded.at(-1)), events: recorded.map(toStoredEvent) }
  }

  /**
   * Appends compliance events to the tenant's compliance stream right after `after`, hash-chained like a task's stream.
   * Only compliance event types are accepted, and only for `tenantId`.
   */
  async appendToCompliance(tenantId: string, pending: readonly PendingEvent[], after: StreamTail): Promise<AppendResult> {
    const streamName = complianceStreamName(tenantId)
    return this.appendChained(streamName, tenantId, pending, after, (event) => {
      if (!COMPLIANCE_EVENT_TYPES.has(event.type)) throw new RangeError(`event ${event.type} is not a compliance event; refusing to append it to ${streamName}`)
      if (event.metadata.tenantId !== tenantId) throw new RangeError(`event ${event.type} names tenant ${event.metadata.tenantId} but is being appended to ${streamName}`)
    })
  }

  /**
   * Appends `pending` right after `after` (the stream's tail as the caller read it, e.g. a TaskStream), with
   * `after.revision` as the expected revision, so the store refuses the append if anything was appended since; the
   * caller re-reads and passes the new tail. Each event's `metadata.integrity` is computed here from the tail: event i
   * gets revision `after.revision + 1 + i` (or `i` for a new stream) and chains from the event before it.
   */
  private async appendChained(
    streamName: string,
    tenantId: string,
    pending: readonly PendingEvent[],
    after: StreamTail,
    belongs: (event: AnnalistEvent) => void,
  ): Promise<AppendResult> {
    const valid = pending.map(({ eventId, event }) => {
      const checked = validateEvent(event)
      belongs(checked)
      const { integrity: _replaced, ...metadata } = checked.metadata
      return { eventId: typeof eventId === 'string' ? eventId.toLowerCase() : eventId, type: checked.type, data: checked.data, metadata }
    })
    const { revision: expectedRevision } = after
    if (expectedRevision !== 'no_stream' && (typeof expectedRevision !== 'bigint' || expectedRevision < 0n)) {
      throw new RangeError(`appending to ${streamName}: the tail's revision must be 'no_stream' or a bigint >= 0, got ${String(expectedRevision)}`)
    }
    if (!this.keyRing) throw new MissingIntegrityKeyError(streamName)
    const tenantKey = this.keyRing.keyFor(tenantId)
    let prevHash: string
    if (expectedRevision === 'no_stream') prevHash = anchorHash(tenantKey, streamName)
    else if (after.lastHash === undefined) throw new ChainTailError(streamName, expectedRevision)
    else if (!/^[0-9a-f]{64}$/.test(after.lastHash)) throw new RangeError(`appending to ${streamName}: the tail's lastHash must be 64 lowercase hex characters`)
    else prevHash = after.lastHash
    let revision = expectedRevision === 'no_stream' ? 0n : expectedRevision + 1n
    const events = valid.map((event) => {
      const hash = linkHash(tenantKey, prevHash, { streamName, revision, ...event })
      const chained = { ...event, metadata: { ...event.metadata, integrity: { prevHash, hash } } }
      prevHash = hash
      revision += 1n
      return chained
    })
    return this.store.appendToStream(streamName, events, { expectedRevision })
  }

  async readTenantLog(tenantId: string, options?: ReadAllOptions): Promise<StoredEvent[]> {
    const recorded = await this.store.readTenantLog(assertTenantId(tenantId), options)
    return recorded.map(toStoredEvent)
  }
}
