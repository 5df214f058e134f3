import { buildEvent, type AnnalistEventType, type EventOfType } from '../historian/events'
import type { TaskStream } from '../historian/historian'
import type { ActivityScope } from './activityScope'

/**
 * Builds an event an activity records (buildEvent): its metadata names the activity attempt in `scope`, and
 * `occurredAt` comes from the activity's clock, not the store.
 */
export function activityEvent<T extends AnnalistEventType>(type: T, data: EventOfType<T>['data'], scope: ActivityScope, now: Date, causationId: string | null): EventOfType<T> {
  return buildEvent(type, data, {
    tenantId: scope.tenantId,
    taskId: scope.taskId,
    workflowId: scope.workflowId,
    runId: scope.runId,
    activityId: scope.activityId,
    attempt: scope.attempt,
    correlationId: scope.workflowId,
    causationId,
    occurredAt: now.toISOString(),
    classification: 'internal',
  })
}

/** The ID of the last event the writer read in its stream: the causation of what it records next (null for the first). */
export function lastEventIdOf(stream: TaskStream): string | null {
  return stream.events.at(-1)?.eventId ?? null
}
