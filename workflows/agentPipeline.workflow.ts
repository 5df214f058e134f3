import { ActivityFailure, ApplicationFailure, TimeoutFailure, defineQuery, proxyActivities, setHandler } from '@temporalio/workflow'
import type { ActivityOptions } from '@temporalio/workflow'
import type { PipelineActivities } from '../activities/pipelineActivities'
import {
  DEFAULT_TOOL_CONCURRENCY,
  currentStepQueryName,
  type AgentPipelineInput,
  type AgentPipelineResult,
  type PipelineStep,
  type PipelineTuning,
  type TaskRef,
} from './api'

/** Query: the step the pipeline is on. */
export const currentStepQuery = defineQuery<PipelineStep>(currentStepQueryName)

/** Failure types that no retry can fix; Temporal gives up on them at once. */
const NON_RETRYABLE = ['MODEL_CONTEXT_LENGTH_EXCEEDED', 'INVALID_IDENTIFIER', 'EVENT_SCHEMA_INVALID', 'UNKNOWN_EVENT_TYPE', 'EVENT_ID_CONFLICT', 'BROKEN_INVARIANT']

function activityOptions(tuning: PipelineTuning | undefined, kind: 'model' | 'tool' | 'record'): ActivityOptions {
  const initialInterval = tuning?.retryInitialIntervalMs ?? 1_000
  const heartbeatTimeout = tuning?.heartbeatTimeoutMs ?? 15_000
  const retry = { initialInterval, backoffCoefficient: 2, maximumInterval: initialInterval * 30, nonRetryableErrorTypes: NON_RETRYABLE }
  switch (kind) {
    case 'model':
      return { startToCloseTimeout: '5 minutes', heartbeatTimeout, retry: { ...retry, maximumAttempts: 4 } }
    case 'tool':
      return { startToCloseTimeout: '2 minutes', heartbeatTimeout, retry: { ...retry, maximumAttempts: 5 } }
    case 'record':
      // Recording the task's own lifecycle must not give up: without it the audit trail would have no ending.
      return { startToCloseTimeout: '30 seconds', retry }
  }
}

/** Activities with an explicit, meaningful activity ID: event IDs derive from it, so it must be stable across replays. */
function activity(tuning: PipelineTuning | undefined, kind: 'model' | 'tool' | 'record', activityId: string) {
  return proxyActivities<PipelineActivities>({ ...activityOptions(tuning, kind), activityId })
}

/** Runs `fn` over `items` with at most `limit` in flight, keeping results in item order. */
async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await fn(items[index]!)
    }
  })
  await Promise.all(lanes)
  return results
}

function failureCode(error: unknown): { errorCode: string; message: string } {
  if (error instanceof ActivityFailure) {
    const cause = error.cause
    if (cause instanceof ApplicationFailure) return { errorCode: cause.type ?? 'APPLICATION_FAILURE', message: cause.message }
    if (cause instanceof TimeoutFailure) return { errorCode: `ACTIVITY_TIMEOUT_${cause.timeoutType}`, message: cause.message }
    return { errorCode: 'ACTIVITY_FAILED', message: cause?.message ?? error.message }
  }
  throw error
}

/** The agent pipeline: route -> plan -> tools (parallel, bounded) -> synthesize -> complete, each step recorded as events. */
export async function agentPipeline(input: AgentPipelineInput): Promise<AgentPipelineResult> {
  const task: TaskRef = { tenantId: input.tenantId, taskId: input.taskId }
  const tuning = input.tuning
  let step: PipelineStep = 'receive'
  setHandler(currentStepQuery, () => step)

  await activity(tuning, 'record', 'receive').receiveTask({ ...task, input: input.input, requestedBy: input.requestedBy })
  let route: string | undefined
  let toolCalls = 0
  let toolCallsFailed = 0
  try {
    step = 'route'
    route = (await activity(tuning, 'model', 'route').routeTask(task)).route
    step = 'plan'
    const plan = await activity(tuning, 'model', 'plan').planTask(task)
    step = 'tools'
    toolCalls = plan.toolCallIds.length
    const outcomes = await mapBounded(plan.toolCallIds, tuning?.toolConcurrency ?? DEFAULT_TOOL_CONCURRENCY, (toolCallId) =>
      activity(tuning, 'tool', `tool:${toolCallId}`).executeToolCall({ ...task, toolCallId }),
    )
    toolCallsFailed = outcomes.filter((outcome) => !outcome.ok).length
    step = 'synthesize'
    await activity(tuning, 'model', 'synthesize').synthesizeAnswer(task)
    step = 'complete'
    const completed = await activity(tuning, 'record', 'complete').completeTask(task)
    return { ...task, status: 'completed', route, toolCalls, toolCallsFailed, terminalEventId: completed.eventId }
  } catch (error) {
    const { errorCode, message } = failureCode(error)
    const failedStep = step
    const failed = await activity(tuning, 'record', 'fail').failTask({ ...task, failedStep, errorCode, message })
    return { ...task, status: 'failed', route, toolCalls, toolCallsFailed, failedStep, errorCode, terminalEventId: failed.eventId }
  }
}

