import { v5 as uuidv5 } from 'uuid'

/** Fixed UUIDv5 namespace for Annalist event IDs. Changing it would break idempotency across versions. */
export const ANNALIST_EVENT_NAMESPACE = '6f1c8a52-3d4e-5b7a-9c2d-1e0f4a8b6c3d'

/**
 * The ID of the `n`-th outcome event of one activity: UUIDv5 over `workflowId:runId:activityId:n`.
 * It never includes the attempt, so every attempt of the same activity, zombie or retry, names the same events.
 */
export function outcomeEventId(workflowId: string, runId: string, activityId: string, n: number): string {
  return uuidv5(`${workflowId}:${runId}:${activityId}:${n}`, ANNALIST_EVENT_NAMESPACE)
}

/**
 * The ID of the event recording that one attempt failed and will be retried. Unlike outcomes, a failed attempt is a
 * fact about that attempt, so the attempt number is part of its identity (see docs/idempotency.md).
 */
export function attemptFailureEventId(workflowId: string, runId: string, activityId: string, attempt: number): string {
  return uuidv5(`${workflowId}:${runId}:${activityId}:attempt-${attempt}:failed`, ANNALIST_EVENT_NAMESPACE)
}

/**
 * The ID of the event recording that one attempt's repair call failed (activities/runModelStep.ts): a model step records at
 * most one failed call plus, when the step's one repair ran in the same attempt, that repair's failure.
 */
export function repairFailureEventId(workflowId: string, runId: string, activityId: string, attempt: number): string {
  return uuidv5(`${workflowId}:${runId}:${activityId}:attempt-${attempt}:repair-failed`, ANNALIST_EVENT_NAMESPACE)
}

/** Idempotency key handed to a side-effecting tool, derived like event IDs and never from the attempt. */
export function toolIdempotencyKey(workflowId: string, runId: string, activityId: string): string {
  return uuidv5(`${workflowId}:${runId}:${activityId}:side-effect`, ANNALIST_EVENT_NAMESPACE)
}

/**
 * Idempotency key of the compensation that undoes one side effect, derived from the tool call that caused it
 * (its workflow, run and activity, as its ToolCallExecuted recorded them) and never from an attempt: every attempt of the
 * compensation, and any later compensation of the same side effect, carries the same key, so it is undone at most once.
 */
export function compensationIdempotencyKey(workflowId: string, runId: string, toolActivityId: string): string {
  return uuidv5(`${workflowId}:${runId}:${toolActivityId}:compensation`, ANNALIST_EVENT_NAMESPACE)
}
