import type { PromptRef } from '../historian/events'
import type { TaskState } from '../historian/taskState'
import { brokenInvariant } from './failures'
import { allToolResults, finishedToolResults, recordedFact, renderedPrompt } from './modelStepInputs'
import type { ModelStepSpec } from './runModelStep'
import {
  LOOP_RECENT_RESULTS,
  LOOP_SAMPLE_RESULTS,
  loopPlanningPrompt,
  loopSynthesisPrompt,
  type LoopPlanningReply,
  type LoopPosition,
  type LoopProgress,
  type LoopSummary,
} from './models/loopPrompts'
import type { RenderedPrompt } from './models/modelClient'
import { loopPlanningReplySchema } from './models/planSchemas'
import type { ToolRegistry } from './tools/registry'

/** What a loop has done so far, from the task's state: counts, and the last few results. */
export function loopProgress(state: TaskState): LoopProgress {
  const results = finishedToolResults(state)
  const failed = results.filter((result) => !result.ok).length
  return { toolCallsDone: results.length, succeeded: results.length - failed, failed, recentResults: results.slice(-LOOP_RECENT_RESULTS) }
}

/**
 * One iteration of the loop planner: renders the loop planning prompt from the task's recorded state (which must hold
 * exactly the iterations before this one) and records PlanIterationCreated with the reply's tool calls and `done`.
 */
export function planIterationStep(tools: ToolRegistry, loop: LoopPosition): ModelStepSpec<LoopPlanningReply, 'PlanIterationCreated'> {
  return {
    role: 'planning',
    invokedType: 'PlanIterationCreated',
    failedType: 'PlanningModelFailed',
    render: (state) => {
      if (state.iterations !== loop.iteration - 1) throw brokenInvariant(`loop iteration ${loop.iteration} cannot follow the ${state.iterations} iterations recorded`)
      const unfinished = state.toolCalls.filter((call) => !(call.toolCallId in state.toolOutcomes)).map((call) => call.toolCallId)
      if (unfinished.length > 0) throw brokenInvariant(`loop iteration ${loop.iteration} planned before tool calls ${unfinished.slice(0, 5).join(', ')} had outcomes`)
      const vars = { input: recordedFact(state.input, 'input'), route: recordedFact(state.route, 'route'), tools: tools.list(), loop, progress: loopProgress(state) }
      return renderedPrompt(loopPlanningPrompt, vars)
    },
    reply: { schema: loopPlanningReplySchema(tools, loop) },
    invokedData: (reply, invocation) => ({ ...invocation, iteration: loop.iteration, toolCalls: reply.toolCalls, done: reply.done }),
  }
}

/** A loop's tool-call counts, overall and per tool. */
export function loopSummary(state: TaskState): LoopSummary {
  const results = finishedToolResults(state)
  const byTool: LoopSummary['byTool'] = {}
  for (const result of results) {
    const counts = (byTool[result.toolName] ??= { succeeded: 0, failed: 0 })
    if (result.ok) counts.succeeded += 1
    else counts.failed += 1
  }
  const failed = results.filter((result) => !result.ok).length
  return { iterations: state.iterations, toolCalls: results.length, succeeded: results.length - failed, failed, byTool }
}

/**
 * The synthesis prompt of a long loop: counts of every tool call and a few results from each end, never every result,
 * so the prompt (and the answer) stays bounded however many calls the loop made.
 */
export function renderLoopSynthesis(state: TaskState): RenderedPrompt & { promptRef: PromptRef } {
  const results = allToolResults(state)
  const sample = results.length <= 2 * LOOP_SAMPLE_RESULTS ? results : [...results.slice(0, LOOP_SAMPLE_RESULTS), ...results.slice(-LOOP_SAMPLE_RESULTS)]
  const vars = { input: recordedFact(state.input, 'input'), route: recordedFact(state.route, 'route'), summary: loopSummary(state), sample }
  return renderedPrompt(loopSynthesisPrompt, vars)
}
