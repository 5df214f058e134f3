/**
 * The event-store port: what Annalist needs from any event store.
 * Adapters (PostgreSQL, EventStoreDB, no-op) implement it and pass one contract suite (test/support/eventStoreContract.ts).
 *
 * Revisions are 0-based per stream (the first event is revision 0). Global positions are opaque, strictly increasing
 * bigints; `after` bounds are exclusive, so a checkpoint is simply the last position processed.
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

/** The event-store port. */
export interface EventStore {
  readonly kind: 'postgres' | 'esdb' | 'memory'
  appendToStream(stream: string, events: readonly NewEvent[], options: { expectedRevision: ExpectedRevision }): Promise<AppendResult>
  /** Reads one stream; a stream that does not exist reads as empty. */
  readStream(stream: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>
  /** Reads one tenant's whole log (its stream category) in global order, without touching other tenants' events. */
  readTenantLog(tenantId: string, options?: ReadAllOptions): Promise<RecordedEvent[]>
  /** Reads one event type across all tenants in global order. */
  readEventType(type: string, options?: ReadAllOptions): Promise<RecordedEvent[]>
  /** Reads the whole log in global order. A position is never skipped by a later read, even if its writer committed late. */
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]>
  /** Calls `listener` soon after new events are appended anywhere. A hint only: readers must still poll as a fallback. */
  onAppend(listener: () => void): Promise<Unsubscribe>
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
