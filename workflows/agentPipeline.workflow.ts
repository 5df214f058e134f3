import { ActivityFailure, ApplicationFailure, TimeoutFailure, defineQuery, patched, proxyActivities, setHandler } from '@temporalio/workflow'
import type { ActivityOptions } from '@temporalio/workflow'
import type { PipelineActivities } from '../activities/pipelineActivities'
import {
  DEFAULT_TOOL_CONCURRENCY,
  MODEL_ACTIVITY_ATTEMPTS,
  currentStepQueryName,
  type AgentPipelineInput,
  type AgentPipelineResult,
  type PipelineStep,
  type PipelineTuning,
  REPLAYABLE_STEP_ORDER,
  type ReplayableStep,
  type TaskRef,
} from './api'
import { agentLoop } from './agentLoop'
import { compensateSideEffects, noteSideEffect, type PerformedSideEffect } from './compensation'
import { mapBounded } from './mapBounded'

/** Query: the step the pipeline is on. */
export const currentStepQuery = defineQuery<PipelineStep>(currentStepQueryName)

/** Failure types that no retry can fix; Temporal gives up on them at once. */
const NON_RETRYABLE = ['MODEL_CONTEXT_LENGTH_EXCEEDED', 'INVALID_IDENTIFIER', 'EVENT_SCHEMA_INVALID', 'UNKNOWN_EVENT_TYPE', 'EVENT_ID_CONFLICT', 'BROKEN_INVARIANT']

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

function activityOptions(tuning: PipelineTuning | undefined, kind: 'model' | 'tool' | 'record'): ActivityOptions {
  const initialInterval = tuning?.retryInitialIntervalMs ?? 1_000
  const heartbeatTimeout = tuning?.heartbeatTimeoutMs ?? 15_000
  const retry = { initialInterval, backoffCoefficient: 2, maximumInterval: initialInterval * 30, nonRetryableErrorTypes: NON_RETRYABLE }
  switch (kind) {
    case 'model':
      return { startToCloseTimeout: '5 minutes', heartbeatTimeout, retry: { ...retry, maximumAttempts: MODEL_ACTIVITY_ATTEMPTS } }
    case 'tool':
      return { startToCloseTimeout: '2 minutes', heartbeatTimeout, retry: { ...retry, maximumAttempts: TOOL_MAX_ATTEMPTS } }
    case 'record':
      // Recording the task's own lifecycle must not give up: without it the audit trail would have no ending.
      return { startToCloseTimeout: '30 seconds', retry }
  }
}

/** Activities with an explicit, meaningful activity ID: event IDs derive from it, so it must be stable across replays. */
function activity(tuning: PipelineTuning | undefined, kind: 'model' | 'tool' | 'record', activityId: string) {
  return proxyActivities<PipelineActivities>({ ...activityOptions(tuning, kind), activityId })
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

/** The agent pipeline: route -> plan -> tools (parallel, bounded) -> synthesize -> complete, each step recorded as events. */
export async function agentPipeline(input: AgentPipelineInput): Promise<AgentPipelineResult> {
  const task: TaskRef = { tenantId: input.tenantId, taskId: input.taskId }
  const tuning = input.tuning
  let step: PipelineStep = 'receive'
  setHandler(currentStepQuery, () => step)

  // A replay or redrive (input.run) begins from its signed checkpoint instead of receiving the task: beginRun verifies it
  // and records TaskRunStarted; a refused checkpoint fails the workflow here, before anything else runs (docs/replay.md).
  const begun = input.run ? await activity(tuning, 'record', 'begin-run').beginRun({ ...task, run: input.run }) : undefined
  /** Steps before the linked run's fromStep reuse the parent run's recorded outcomes: no model or tool runs for them. */
  const runs = (candidate: ReplayableStep) => !input.run || REPLAYABLE_STEP_ORDER.indexOf(candidate) >= REPLAYABLE_STEP_ORDER.indexOf(input.run.fromStep)
  // A loop run continued as new (input.loopState) goes on with its pipeline run: nothing to receive or route again.
  if (input.loopState === undefined && !begun) await activity(tuning, 'record', 'receive').receiveTask({ ...task, input: input.input, requestedBy: input.requestedBy })
  let route: string | undefined = begun?.route
  let toolCalls = begun?.toolCallIds.length ?? 0
  let toolCallsFailed = begun?.toolCallsFailed ?? 0
  const sideEffects: PerformedSideEffect[] = []
  try {
    step = 'route'
    route = input.loopState?.route ?? (runs('route') ? (await activity(tuning, 'model', 'route').routeTask(task)).route : (begun?.route ?? ''))
    if (input.loop) {
      // Long agent loop (workflows/agentLoop.ts); its continue-as-new is no failure: failureCode rethrows it untouched.
      await agentLoop({
        input: { ...input, loop: input.loop },
        task,
        route,
        activityOptions: (kind) => activityOptions(tuning, kind),
        onStep: (next) => (step = next),
        onProgress: (loop) => ((toolCalls = loop.toolCallsDone), (toolCallsFailed = loop.toolCallsFailed)),
        onToolOutcome: (toolCallId, outcome) => noteSideEffect(sideEffects, toolCallId, outcome),
      })
    } else {
      let toolCallIds = begun?.toolCallIds ?? []
      if (runs('plan')) {
        step = 'plan'
        toolCallIds = (await activity(tuning, 'model', 'plan').planTask(task)).toolCallIds
      }
      if (runs('tools')) {
        step = 'tools'
        toolCalls = toolCallIds.length
        const outcomes = await mapBounded(toolCallIds, tuning?.toolConcurrency ?? DEFAULT_TOOL_CONCURRENCY, (toolCallId) =>
          activity(tuning, 'tool', `tool:${toolCallId}`).executeToolCall({ ...task, toolCallId }).then((outcome) => noteSideEffect(sideEffects, toolCallId, outcome)),
        )
        toolCallsFailed = outcomes.filter((outcome) => !outcome.ok).length
      }
    }
    step = 'synthesize'
    await activity(tuning, 'model', 'synthesize').synthesizeAnswer(task)
    step = 'complete'
    const completed = await activity(tuning, 'record', 'complete').completeTask(task)
    return { ...task, status: 'completed', route, toolCalls, toolCallsFailed, terminalEventId: completed.eventId }
  } catch (error) {
    const { errorCode, message, ...retry } = failureCode(error)
    const failedStep = step
    // Saga: undo this run's side effects before recording the failure. Gated by patched() so that executions begun by the
    // code before this change replay without the new activities (docs/workflow-changes.md).
    if (patched('compensate-side-effects')) await compensateSideEffects(task, sideEffects, (activityId) => activity(tuning, 'tool', activityId))
    const failed = await activity(tuning, 'record', 'fail').failTask({ ...task, failedStep, errorCode, message, ...retry, maxAttempts: STEP_MAX_ATTEMPTS[failedStep] })
    return { ...task, status: 'failed', route, toolCalls, toolCallsFailed, failedStep, errorCode, terminalEventId: failed.eventId }
  }
}

