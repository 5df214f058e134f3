import { continueAsNew, proxyActivities, workflowInfo, type ActivityOptions } from '@temporalio/workflow'
import type { PipelineActivities } from '../activities/pipelineActivities'
import { DEFAULT_TOOL_CALLS_PER_ITERATION, DEFAULT_TOOL_CONCURRENCY, type AgentPipelineInput, type AgentPipelineWorkflow, type LoopOptions, type LoopState, type PipelineStep, type TaskRef } from './api'
import { mapBounded } from './mapBounded'

/** What the loop needs from the pipeline that runs it. */
export interface AgentLoopContext {
  readonly input: AgentPipelineInput & { readonly loop: LoopOptions }
  readonly task: TaskRef
  /** The route of this pipeline run (recorded by `route`, or carried over by continue-as-new). */
  readonly route: string
  /** The pipeline's activity options per kind of activity. */
  readonly activityOptions: (kind: 'model' | 'tool' | 'record') => ActivityOptions
  /** Whether a fan-out with a failed call lets the calls in flight settle before failing (patched drain-fan-out). */
  readonly drain: () => boolean
  readonly onStep: (step: PipelineStep) => void
  /** Called with the loop's totals at the start and after every iteration. */
  readonly onProgress: (state: LoopState) => void
  /** Called as each tool call completes (e.g. to note side effects for compensation). */
  readonly onToolOutcome?: (toolCallId: string, outcome: ToolCallOutcome) => void
}

/** What a tool call activity returns. */
type ToolCallOutcome = Awaited<ReturnType<PipelineActivities['executeToolCall']>>

/** Why a run hands over to a fresh one, as TaskRunContinued records it; undefined: not yet. */
function continueReason(threshold: number | undefined): 'continue_as_new_suggested' | 'history_threshold' | undefined {
  const info = workflowInfo()
  if (info.continueAsNewSuggested) return 'continue_as_new_suggested'
  if (threshold !== undefined && info.historyLength >= threshold) return 'history_threshold'
  return undefined
}

/**
 * A long agent loop: each iteration the planner looks at the task's recorded state and asks for the next tool calls
 * (activity `plan:<iteration>`, PlanIterationCreated), which then run with bounded concurrency (`tool:<toolCallId>`),
 * until the planner says done or `maxIterations` is reached. Between iterations, when Temporal suggests it (or the
 * history passes the tuning threshold), the run records TaskRunContinued (`continue:<iteration>`) and continues as new
 * with the loop state; the next run skips receive and route and goes on with the next iteration, in the same stream.
 */
export async function agentLoop(ctx: AgentLoopContext): Promise<LoopState> {
  const { input, task } = ctx
  const tuning = input.tuning
  const proxy = (kind: 'model' | 'tool' | 'record', activityId: string, extra: ActivityOptions = {}) =>
    proxyActivities<PipelineActivities>({ ...ctx.activityOptions(kind), ...extra, activityId })
  const toolCallsPerIteration = input.loop.toolCallsPerIteration ?? DEFAULT_TOOL_CALLS_PER_ITERATION
  let state: LoopState = input.loopState ?? { iterationsDone: 0, toolCallsDone: 0, toolCallsFailed: 0, route: ctx.route }
  ctx.onProgress(state)

  while (state.iterationsDone < input.loop.maxIterations) {
    const iteration = state.iterationsDone + 1
    ctx.onStep('plan')
    const plan = await proxy('model', `plan:${iteration}`).planIteration({ ...task, iteration, maxIterations: input.loop.maxIterations, toolCallsPerIteration })
    ctx.onStep('tools')
    const outcomes = await mapBounded(plan.toolCallIds, tuning?.toolConcurrency ?? DEFAULT_TOOL_CONCURRENCY, (toolCallId) =>
      proxy('tool', `tool:${toolCallId}`)
        .executeToolCall({ ...task, toolCallId })
        .then((outcome) => {
          ctx.onToolOutcome?.(toolCallId, outcome)
          return outcome
        }),
      { drain: ctx.drain() },
    )
    state = {
      ...state,
      iterationsDone: iteration,
      toolCallsDone: state.toolCallsDone + outcomes.length,
      toolCallsFailed: state.toolCallsFailed + outcomes.filter((outcome) => !outcome.ok).length,
    }
    ctx.onProgress(state)
    if (plan.done || iteration >= input.loop.maxIterations) break

    const reason = continueReason(tuning?.continueAsNewAtHistoryLength)
    if (reason !== undefined) {
      const { historyLength, historySize } = workflowInfo()
      // The recording must not give up (like every lifecycle record), but a dead worker must be noticed quickly.
      const recording = proxy('record', `continue:${iteration}`, { heartbeatTimeout: ctx.activityOptions('model').heartbeatTimeout })
      await recording.recordRunContinued({ ...task, iterationsDone: iteration, toolCallsDone: state.toolCallsDone, historyLength, historySizeBytes: historySize, reason })
      await continueAsNew<AgentPipelineWorkflow>({ ...input, loopState: state })
    }
  }
  return state
}
