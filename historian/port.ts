/**
 * The event-store port: what Annalist needs from any event store.
 * Adapters (PostgreSQL, EventStoreDB, no-op) implement it and pass one contract suite (test/support/eventStoreContract.ts).
 *
 * Revisions are 0-based per stream (the first event is revision 0). Global positions are opaque, strictly increasing
 * bigints; `after` bounds are exclusive, so a checkpoint is simply the last position processed.
 *
 * Every read (one stream, a tenant's log, an event type, the whole log, a subscription) shows only the events that are
 * visible: not in a soft-deleted or tombstoned stream, not below the stream's truncate-before, not beyond its newest
 * `maxCount`, not older than its `maxAge`. Where the adapters differ underneath: docs/event-store-contract.md.
 */

/** The revision an append expects the stream to be at. Annalist's activities always pass a number or 'no_stream'. */
export type ExpectedRevision = bigint | 'no_stream' | 'stream_exists' | 'any'

/** An event to append; `eventId` is a UUID chosen by the writer and deterministic for retries. */
export interface NewEvent {
  readonly eventId: string
  readonly type: string
  readonly data: unknown
  readonly metadata: Record<string, unknown>
}

/** An event as stored. */
export interface RecordedEvent extends NewEvent {
  readonly streamName: string
  readonly revision: bigint
  readonly position: bigint
  /**
   * The event's place in its tenant's log: 1-based, per tenant, dense (no gaps), in commit order, assigned at append.
   * Unlike `position`, it says nothing about other tenants, so it is what tenant-facing surfaces show (docs/ordering.md).
   * Null for streams outside a tenant category (`compliance_<t>-lifecycle`), and null on EventStoreDB, which does not
   * number at append (its audit projection numbers the tenant's events itself).
   */
  readonly tenantSequence: bigint | null
  readonly recordedAt: Date
}

/** What an append did. `written` is false when it was an idempotent repeat of events already stored. */
export interface AppendResult {
  readonly nextExpectedRevision: bigint
  readonly position: bigint
  readonly written: boolean
}

export interface ReadStreamOptions {
  readonly fromRevision?: bigint
  readonly direction?: 'forwards' | 'backwards'
  readonly maxCount?: number
}

export interface ReadAllOptions {
  /** Exclusive lower bound: only events after this global position. Omit to start at the beginning. */
  readonly after?: bigint
  readonly maxCount?: number
}

/** Stops a notification listener. */
export type Unsubscribe = () => Promise<void>

/** The revision a delete or tombstone expects the stream to be at ('stream_exists' has no EventStoreDB equivalent here). */
export type ExpectedRevisionForDelete = Exclude<ExpectedRevision, 'stream_exists'>

/**
 * Retention rules of one stream, enforced on every read. Setting them replaces the previous rules as a whole
 * (a field left out is cleared).
 */
export interface StreamMetadata {
  /** Events recorded more than this many seconds ago are no longer read. A whole number >= 1. */
  readonly maxAge?: number
  /** Only the newest `maxCount` events of the stream are read. A whole number >= 1. */
  readonly maxCount?: number
  /** Events below this revision are no longer read. */
  readonly truncateBefore?: bigint
}

/** The metadata revision a `setStreamMetadata` expects: a number, 'no_metadata' (never set) or 'any'. */
export type ExpectedMetadataRevision = bigint | 'no_metadata' | 'any'

/** A stream's metadata as stored now. */
export interface StreamMetadataResult {
  readonly metadata: StreamMetadata
  /** 0 after the first change of the stream's metadata (a delete counts as one), +1 for each further change. */
  readonly metadataRevision: bigint | 'no_metadata'
  /** True while the stream is soft-deleted and has not been appended to since. */
  readonly deleted: boolean
}

/** The event-store port. */
export interface EventStore {
  readonly kind: 'postgres' | 'esdb' | 'memory'
  appendToStream(stream: string, events: readonly NewEvent[], options: { expectedRevision: ExpectedRevision }): Promise<AppendResult>
  /** Reads one stream; a stream that does not exist reads as empty. */
  readStream(stream: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>
  /** Reads one tenant's whole log (its stream category) in global order, without touching other tenants' events. */
  readTenantLog(tenantId: string, options?: ReadAllOptions): Promise<RecordedEvent[]>
  /** The tenant's newest visible event, or undefined when its log is empty: the end of a consistent read of the log. */
  readTenantHead(tenantId: string): Promise<RecordedEvent | undefined>
  /** Reads one event type across all tenants in global order. */
  readEventType(type: string, options?: ReadAllOptions): Promise<RecordedEvent[]>
  /** Reads the whole log in global order. A position is never skipped by a later read, even if its writer committed late. */
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]>
  /** Calls `listener` soon after new events are appended anywhere. A hint only: readers must still poll as a fallback. */
  onAppend(listener: () => void): Promise<Unsubscribe>
  /**
   * Soft-deletes a stream: it then reads as a missing stream, everywhere. Appending again is allowed ('no_stream', 'any' or
   * the last revision before the delete are accepted) and continues the revision numbering; the earlier events stay
   * invisible (the delete set truncate-before to the last revision + 1).
   */
  deleteStream(stream: string, options: { expectedRevision: ExpectedRevisionForDelete }): Promise<void>
  /** Tombstones a stream for good: every later append, read, delete or metadata call on it fails with StreamTombstonedError. */
  tombstoneStream(stream: string, options: { expectedRevision: ExpectedRevisionForDelete }): Promise<void>
  /** Replaces the stream's retention rules; returns the new metadata revision. */
  setStreamMetadata(
    stream: string,
    metadata: StreamMetadata,
    options?: { expectedMetadataRevision?: ExpectedMetadataRevision },
  ): Promise<{ metadataRevision: bigint }>
  /** The stream's retention rules and whether it is soft-deleted; a stream without metadata has `metadataRevision: 'no_metadata'`. */
  getStreamMetadata(stream: string): Promise<StreamMetadataResult>
  /**
   * Every stream the store holds lifecycle state for (retention rules, a soft delete or a tombstone), in name order:
   * what `annalist lifecycle check` holds against the recorded decisions. EventStoreDB cannot list its metadata streams
   * cheaply and refuses with UnsupportedStoreOperationError.
   */
  listLifecycleStreams(): Promise<string[]>
  close(): Promise<void>
}

/** Thrown when an append's expected revision does not match the stream's actual revision. */
export class ConcurrencyError extends Error {
  constructor(
    readonly stream: string,
    readonly expected: ExpectedRevision,
    readonly actual: bigint | 'no_stream',
  ) {
    super(`stream ${stream}: expected revision ${String(expected)}, actual ${String(actual)}`)
    this.name = 'ConcurrencyError'
  }
}

/** Thrown when an append repeats some, but not all, event IDs already in the stream, or repeats them at another place. */
export class EventIdConflictError extends Error {
  constructor(
    readonly stream: string,
    readonly conflictingEventIds: readonly string[],
  ) {
    super(`stream ${stream}: event IDs ${conflictingEventIds.join(', ')} already stored at another place; refusing a partial or misplaced re-append`)
    this.name = 'EventIdConflictError'
  }
}

/** Thrown when a stream was tombstoned: it can never be appended to, read, deleted or given metadata again. Nothing is written. */
export class StreamTombstonedError extends Error {
  constructor(readonly stream: string) {
    super(`stream ${stream} is tombstoned: it can never be written or read again`)
    this.name = 'StreamTombstonedError'
  }
}

/** Thrown when setStreamMetadata's expected metadata revision does not match the stream's metadata revision. Nothing is written. */
export class MetadataConcurrencyError extends Error {
  constructor(
    readonly stream: string,
    readonly expected: ExpectedMetadataRevision,
    readonly actual: bigint | 'no_metadata',
  ) {
    super(`stream ${stream}: expected metadata revision ${String(expected)}, actual ${String(actual)}`)
    this.name = 'MetadataConcurrencyError'
  }
}

/** Thrown when an operation of the port is not available on this kind of store; nothing is read or written. */
export class UnsupportedStoreOperationError extends Error {
  constructor(
    readonly storeKind: EventStore['kind'],
    readonly operation: string,
    why: string,
  ) {
    super(`${operation} is not supported on the ${storeKind} event store: ${why}`)
    this.name = 'UnsupportedStoreOperationError'
  }
}

/** Thrown when the event store cannot be reached or answers with an error the port does not model. */
export class EventStoreUnavailableError extends Error {
  constructor(
    readonly storeKind: EventStore['kind'],
    cause: unknown,
  ) {
    super(`${storeKind} event store unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
    this.name = 'EventStoreUnavailableError'
  }
}

/** What a store throws when an operation fails: the port's own errors as they are, anything else (the driver's) as EventStoreUnavailableError. */
export function asEventStoreError(storeKind: EventStore['kind'], error: unknown): Error {
  if (
    error instanceof ConcurrencyError ||
    error instanceof EventIdConflictError ||
    error instanceof EventStoreUnavailableError ||
    error instanceof StreamTombstonedError ||
    error instanceof MetadataConcurrencyError
  ) {
    return error
  }
  return new EventStoreUnavailableError(storeKind, error)
}
