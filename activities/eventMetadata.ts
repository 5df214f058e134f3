import { CURRENT_SCHEMA_VERSION, type AnnalistEventType, type EventMetadata } from '../historian/events'
import type { ActivityScope } from './activityScope'

/** Builds the metadata every event carries. `occurredAt` comes from the activity's clock, not the store. */
export function eventMetadata(type: AnnalistEventType, scope: ActivityScope, now: Date, causationId: string | null): EventMetadata {
  return {
    schemaVersion: CURRENT_SCHEMA_VERSION[type],
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
  }
}
