import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  allHandlersFinished,
  condition,
  defineQuery,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow'
import type { ActivityOptions } from '@temporalio/workflow'
import type { PipelineActivities } from '../activities/pipelineActivities'
import { NON_RETRYABLE_FAILURE_TYPES, REPLAYABLE_STEPS } from '../historian/events/catalogue'
import {
  DEFAULT_TOOL_CONCURRENCY,
  MODEL_ACTIVITY_ATTEMPTS,
  currentStepQueryName,
  type AgentPipelineInput,
  type AgentPipelineResult,
  type PipelineStep,
  type PipelineTuning,
  type ReplayableStep,
  type TaskRef,
} from './api'
import { agentLoop } from './agentLoop'
import { PipelineCancellation } from './cancellation'
import { compensateRecordedSideEffects, compensateSideEffects, noteSideEffect, type CompensationSummary, type PerformedSideEffect } from './compensation'
import { mapBounded } from './mapBounded'
import { WORKFLOW_PATCHES } from './patches'

/** Query: the step the pipeline is on. */
export const currentStepQuery = defineQuery<PipelineStep>(currentStepQueryName)

/**
 * Attempts Temporal makes of a model or tool activity; recording activities retry without limit. A model step's own
 * budget of model calls is smaller (MODEL_CALL_ATTEMPTS, enforced by the activity from the recorded failures).
 */
const TOOL_MAX_ATTEMPTS = 5
/** The attempts each step's activities get, for the dead letter of a step that used them all. */
const STEP_MAX_ATTEMPTS: Partial<Record<PipelineStep, number>> = {
  route: MODEL_ACTIVITY_ATTEMPTS,
  plan: MODEL_ACTIVITY_ATTEMPTS,
  tools: TOOL_MAX_ATTEMPTS,
  synthesize: MODEL_ACTIVITY_ATTEMPTS,
}

/**
 * How a run's activities are scheduled. With recorded cancels (`settleOnCancel`), a cancelled activity is
 * waited for until it has stopped (it learns of the cancel through its heartbeat), so nothing it records lands after the
 * run's ending.
 */
function activityOptions(tuning: PipelineTuning | undefined, kind: 'model' | 'tool' | 'record', settleOnCancel = false): ActivityOptions {
  const initialInterval = tuning?.retryInitialIntervalMs ?? 1_000
  const heartbeatTimeout = tuning?.heartbeatTimeoutMs ?? 15_000
  const retry = { initialInterval, backoffCoefficient: 2, maximumInterval: initialInterval * 30, nonRetryableErrorTypes: [...NON_RETRYABLE_FAILURE_TYPES] }
  const cancellation = settleOnCancel ? { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED } : {}
  switch (kind) {
    case 'model':
      return { startToCloseTimeout: '5 minutes', heartbeatTimeout, retry: { ...retry, maximumAttempts: MODEL_ACTIVITY_ATTEMPTS }, ...cancellation }
    case 'tool':
      return { startToCloseTimeout: tuning?.toolTimeoutMs ?? '2 minutes', heartbeatTimeout, retry: { ...retry, maximumAttempts: TOOL_MAX_ATTEMPTS }, ...cancellation }
    case 'record':
      // Recording the task's own lifecycle must not give up: without it the audit trail would have no ending.
      return { startToCloseTimeout: '30 seconds', retry, ...cancellation }
  }
}

/** Activities with an explicit, meaningful activity ID: event IDs derive from it, so it must be stable across replays. */
function activity(tuning: PipelineTuning | undefined, kind: 'model' | 'tool' | 'record', activityId: string, settleOnCancel = false) {
  return proxyActivities<PipelineActivities>({ ...activityOptions(tuning, kind, settleOnCancel), activityId })
}

/** The error code and message of a failed activity, with Temporal's retry state and the activity's ID (for the dead letter). */
function failureCode(error: unknown): { errorCode: string; message: string; retryState?: string; activityId?: string } {
  if (error instanceof ActivityFailure) {
    const cause = error.cause
    const retry = { retryState: error.retryState ?? undefined, activityId: error.activityId }
    if (cause instanceof ApplicationFailure) return { errorCode: cause.type ?? 'APPLICATION_FAILURE', message: cause.message, ...retry }
    if (cause instanceof TimeoutFailure) return { errorCode: `ACTIVITY_TIMEOUT_${cause.timeoutType}`, message: cause.message, ...retry }
    return { errorCode: 'ACTIVITY_FAILED', message: cause?.message ?? error.message, ...retry }
  }
  throw error
}

/**
 * The agent pipeline: route -> plan -> tools (parallel, bounded) -> synthesize -> complete, each step recorded as events.
 * A run that fails compensates its side effects and records AgentTaskFailed; a run that is cancelled (the cancel Update,
 * or Temporal's own cancel) compensates them and records AgentTaskCancelled, both outside the cancelled scope
 * (docs/cancellation.md). Changes are gated by patched() so that executions begun by older code replay unchanged.
 */
export async function agentPipeline(input: AgentPipelineInput): Promise<AgentPipelineResult> {
  const task: TaskRef = { tenantId: input.tenantId, taskId: input.taskId }
  const tuning = input.tuning
  let step: PipelineStep = 'receive'
  setHandler(currentStepQuery, () => step)
  const cancellation = patched(WORKFLOW_PATCHES.recordedCancel) ? new PipelineCancellation(() => step) : undefined
  const settleOnCancel = cancellation !== undefined
  const drain = () => patched(WORKFLOW_PATCHES.drainFanOut)

  // A replay or redrive (input.run) begins from its signed checkpoint instead of receiving the task: beginRun verifies it
  // and records TaskRunStarted; a refused checkpoint fails the workflow here, before anything else runs (docs/replay.md).
  const begun = input.run ? await activity(tuning, 'record', 'begin-run').beginRun({ ...task, run: input.run }) : undefined
  /** Steps before the linked run's fromStep reuse the parent run's recorded outcomes: no model or tool runs for them. */
  const runs = (candidate: ReplayableStep) => !input.run || REPLAYABLE_STEPS.indexOf(candidate) >= REPLAYABLE_STEPS.indexOf(input.run.fromStep)
  // A loop run continued as new (input.loopState) goes on with its pipeline run: nothing to receive or route again.
  if (input.loopState === undefined && !begun) await activity(tuning, 'record', 'receive').receiveTask({ ...task, input: input.input, requestedBy: input.requestedBy })
  let route: string | undefined = begun?.route
  let toolCalls = begun?.toolCallIds.length ?? 0
  let toolCallsFailed = begun?.toolCallsFailed ?? 0
  const sideEffects: PerformedSideEffect[] = []

  const work = async () => {
    step = 'route'
    route = input.loopState?.route ?? (runs('route') ? (await activity(tuning, 'model', 'route', settleOnCancel).routeTask(task)).route : (begun?.route ?? ''))
    if (input.loop) {
      // Long agent loop (workflows/agentLoop.ts); its continue-as-new is no failure: failureCode rethrows it untouched.
      await agentLoop({
        input: { ...input, loop: input.loop },
        task,
        route,
        activityOptions: (kind) => activityOptions(tuning, kind, settleOnCancel),
        drain,
        onStep: (next) => (step = next),
        onProgress: (loop) => ((toolCalls = loop.toolCallsDone), (toolCallsFailed = loop.toolCallsFailed)),
        onToolOutcome: (toolCallId, outcome) => noteSideEffect(sideEffects, toolCallId, outcome),
      })
    } else {
      let toolCallIds = begun?.toolCallIds ?? []
      if (runs('plan')) {
        step = 'plan'
        toolCallIds = (await activity(tuning, 'model', 'plan', settleOnCancel).planTask(task)).toolCallIds
      }
      if (runs('tools')) {
        step = 'tools'
        toolCalls = toolCallIds.length
        const outcomes = await mapBounded(
          toolCallIds,
          tuning?.toolConcurrency ?? DEFAULT_TOOL_CONCURRENCY,
          (toolCallId) =>
            activity(tuning, 'tool', `tool:${toolCallId}`, settleOnCancel)
              .executeToolCall({ ...task, toolCallId })
              .then((outcome) => noteSideEffect(sideEffects, toolCallId, outcome)),
          { drain: drain() },
        )
        toolCallsFailed = outcomes.filter((outcome) => !outcome.ok).length
      }
    }
    step = 'synthesize'
    await activity(tuning, 'model', 'synthesize', settleOnCancel).synthesizeAnswer(task)
  }

  /** Saga: undoes the run's side effects, from the stream's record when the patch allows, else from what this run noted. */
  const compensate = async (): Promise<CompensationSummary> => {
    if (patched(WORKFLOW_PATCHES.compensateRecordedSideEffects)) {
      return compensateRecordedSideEffects(task, { record: (activityId) => activity(tuning, 'record', activityId), tool: (activityId) => activity(tuning, 'tool', activityId) })
    }
    return compensateSideEffects(task, sideEffects, (activityId) => activity(tuning, 'tool', activityId))
  }
  /** With recorded cancels, a run's ending is recorded where no cancel reaches it. */
  const shielded = <T>(fn: () => Promise<T>): Promise<T> => (cancellation ? CancellationScope.nonCancellable(fn) : fn())
  /** Answers any cancel request with how the run ended, and lets its handler finish before the workflow does. */
  const ended = async <R extends AgentPipelineResult>(result: R): Promise<R> => {
    if (!cancellation) return result
    cancellation.ended({ status: result.status, terminalEventId: result.terminalEventId, cancelledBy: result.status === 'cancelled' ? (cancellation.request?.requestedBy ?? null) : undefined })
    await condition(allHandlersFinished)
    return result
  }

  try {
    await (cancellation ? cancellation.scope.run(work) : work())
    step = 'complete'
    const completed = await shielded(() => activity(tuning, 'record', 'complete').completeTask(task))
    return await ended({ ...task, status: 'completed', route, toolCalls, toolCallsFailed, terminalEventId: completed.eventId })
  } catch (error) {
    if (cancellation && isCancellation(error)) {
      const request = cancellation.request
      const cancelledStep = cancellation.cancelledStep ?? step
      const cancelled = await shielded(async () => {
        const summary = await compensate()
        return activity(tuning, 'record', 'cancel').cancelTask({
          ...task,
          cancelledStep,
          source: request ? 'annalist' : 'temporal',
          requestedBy: request?.requestedBy ?? null,
          reason: request?.reason ?? null,
          sideEffectsCompensated: summary.compensated.length,
          compensationsFailed: summary.failed.length,
        })
      })
      const result = await ended({ ...task, status: 'cancelled', route, toolCalls, toolCallsFailed, cancelledStep, terminalEventId: cancelled.eventId })
      // Temporal's own cancel ends the execution as cancelled in Temporal too; the cancel Update ends it with a result.
      if (!request) throw error
      return result
    }
    const { errorCode, message, ...retry } = failureCode(error)
    const failedStep = step
    const failed = await shielded(async () => {
      // Saga: undo this run's side effects before recording the failure. Gated by patched() so that executions begun by
      // the code before this change replay without the new activities (docs/workflow-changes.md).
      if (patched(WORKFLOW_PATCHES.compensateSideEffects)) await compensate()
      return activity(tuning, 'record', 'fail').failTask({ ...task, failedStep, errorCode, message, ...retry, maxAttempts: STEP_MAX_ATTEMPTS[failedStep] })
    })
    return await ended({ ...task, status: 'failed', route, toolCalls, toolCallsFailed, failedStep, errorCode, terminalEventId: failed.eventId })
  }
}
