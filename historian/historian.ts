import { readEvent, validateEvent, type AnnalistEvent } from './events'
import type { AppendResult, EventStore, ExpectedRevision, ReadAllOptions, RecordedEvent } from './port'
import { assertTenantId, taskStreamName } from './streams'

/** A domain event as stored, with its place in the log. */
export interface StoredEvent<E extends AnnalistEvent = AnnalistEvent> {
  readonly eventId: string
  readonly streamName: string
  readonly revision: bigint
  readonly position: bigint
  readonly recordedAt: Date
  readonly event: E
}

/** One task's stream as read now: its events and the revision to expect when appending next. */
export interface TaskStream {
  readonly streamName: string
  readonly revision: bigint | 'no_stream'
  readonly events: readonly StoredEvent[]
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
    recordedAt: recorded.recordedAt,
    event: readEvent(recorded),
  }
}

/**
 * The typed face of the event store: validates every event against its schema before anything is written,
 * and upcasts every event it reads. Tenant and task IDs are checked before any I/O.
 */
export class Historian {
  constructor(readonly store: EventStore) {}

  async readTask(tenantId: string, taskId: string): Promise<TaskStream> {
    const streamName = taskStreamName(tenantId, taskId)
    const recorded = await this.store.readStream(streamName)
    const last = recorded[recorded.length - 1]
    return { streamName, revision: last ? last.revision : 'no_stream', events: recorded.map(toStoredEvent) }
  }

  async appendToTask(tenantId: string, taskId: string, pending: readonly PendingEvent[], expectedRevision: ExpectedRevision): Promise<AppendResult> {
    const streamName = taskStreamName(tenantId, taskId)
    const events = pending.map(({ eventId, event }) => {
      const valid = validateEvent(event)
      if (valid.metadata.tenantId !== tenantId || valid.metadata.taskId !== taskId) {
        throw new RangeError(`event ${valid.type} names tenant ${valid.metadata.tenantId}/${valid.metadata.taskId} but is being appended to ${streamName}`)
      }
      return { eventId, type: valid.type, data: valid.data, metadata: valid.metadata }
    })
    return this.store.appendToStream(streamName, events, { expectedRevision })
  }

  async readTenantLog(tenantId: string, options?: ReadAllOptions): Promise<StoredEvent[]> {
    const recorded = await this.store.readTenantLog(assertTenantId(tenantId), options)
    return recorded.map(toStoredEvent)
  }
}
