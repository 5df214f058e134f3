import { ActivityFailure, TimeoutFailure } from '@temporalio/workflow'
import type { PipelineActivities } from '../activities/pipelineActivities'
import type { TaskRef } from './api'

/** A side effect this run performed that its tool can undo: a tool call whose activity result said `compensable`. */
export interface PerformedSideEffect {
  readonly toolCallId: string
  readonly sideEffectId: string
}

/** How the compensations of a failed run went, per tool call, in the order they ran. */
export interface CompensationSummary {
  readonly compensated: readonly string[]
  /** Tool calls whose compensation recorded ToolCompensationFailed, or whose activity failed without recording anything. */
  readonly failed: readonly string[]
}

/** The activity ID of the compensation of one tool call: stable across replays, since event IDs derive from it. */
export function compensationActivityId(toolCallId: string): string {
  return `compensate:${toolCallId}`
}

/**
 * Notes a tool call's outcome in `performed` when it left a side effect its tool can undo, and returns the outcome.
 * Called as each tool call completes, so `performed` is in order of completion (deterministic: it follows history).
 */
export function noteSideEffect<O extends { ok: boolean; sideEffectId?: string; compensable?: boolean }>(performed: PerformedSideEffect[], toolCallId: string, outcome: O): O {
  if (outcome.ok && outcome.compensable === true && outcome.sideEffectId !== undefined) performed.push({ toolCallId, sideEffectId: outcome.sideEffectId })
  return outcome
}

/**
 * Saga-style compensation of a run that failed: undoes the side effects this run performed, one activity each
 * (`compensate:<toolCallId>`), one at a time, the most recent first. A compensation that fails for good is recorded by
 * its activity (ToolCompensationFailed) and does not stop the others: the task's failure must still be recorded.
 * `compensator` gives the activity proxy for an activity ID, so the caller keeps its timeouts and retry policy.
 */
export async function compensateSideEffects(
  task: TaskRef,
  performed: readonly PerformedSideEffect[],
  compensator: (activityId: string) => Pick<PipelineActivities, 'compensateToolCall'>,
): Promise<CompensationSummary> {
  const compensated: string[] = []
  const failed: string[] = []
  for (const sideEffect of [...performed].reverse()) {
    try {
      const result = await compensator(compensationActivityId(sideEffect.toolCallId)).compensateToolCall({ ...task, toolCallId: sideEffect.toolCallId })
      ;(result.ok ? compensated : failed).push(sideEffect.toolCallId)
    } catch (error) {
      if (!(error instanceof ActivityFailure)) throw error
      failed.push(sideEffect.toolCallId)
    }
  }
  return { compensated, failed }
}

/** The activity proxies compensation needs: recording activities (never give up) and tool activities (the tools' retry policy). */
export interface CompensationActivities {
  readonly record: (activityId: string) => Pick<PipelineActivities, 'sideEffectsToCompensate' | 'recordCompensationFailed'>
  readonly tool: (activityId: string) => Pick<PipelineActivities, 'compensateToolCall'>
}

/**
 * Compensation of a run that failed or was cancelled, from what the task's stream records rather than from what the
 * workflow happened to see: every side effect of the run still to be undone (sideEffectsToCompensate: executed calls,
 * and failed calls that left a side effect), most recent first, one `compensate:<toolCallId>` activity each. A
 * compensation activity that fails for good without recording an outcome (its last attempt timed out, its worker died)
 * is recorded as ToolCompensationFailed by `compensation-failed:<toolCallId>`, so no standing side effect is known only
 * to Temporal's history.
 */
export async function compensateRecordedSideEffects(task: TaskRef, activities: CompensationActivities): Promise<CompensationSummary> {
  const pending = await activities.record('side-effects').sideEffectsToCompensate(task)
  const compensated: string[] = []
  const failed: string[] = []
  for (const { toolCallId } of [...pending].reverse()) {
    const startedAt = Date.now()
    let ok: boolean
    try {
      ok = (await activities.tool(compensationActivityId(toolCallId)).compensateToolCall({ ...task, toolCallId })).ok
    } catch (error) {
      if (!(error instanceof ActivityFailure)) throw error
      const timedOut = error.cause instanceof TimeoutFailure
      const recorded = await activities.record(`compensation-failed:${toolCallId}`).recordCompensationFailed({
        ...task,
        toolCallId,
        errorCode: timedOut ? 'COMPENSATION_TIMEOUT' : 'COMPENSATION_ERROR',
        message: `compensation activity gave up: ${error.cause?.message ?? error.message}`,
        latencyMs: Date.now() - startedAt,
      })
      ok = recorded.ok
    }
    ;(ok ? compensated : failed).push(toolCallId)
  }
  return { compensated, failed }
}
