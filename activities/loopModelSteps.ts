import type { PromptRef } from '../historian/events'
import type { TaskState } from '../historian/taskState'
import { brokenInvariant } from './failures'
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
import { promptRef, type SynthesisToolResult } from './models/prompts'
import type { ToolRegistry } from './tools/registry'

function recorded<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw brokenInvariant(`the task's recorded events have no ${what} yet`)
  return value
}

/** The task's tool calls that have an outcome, in plan order, as prompts show them. */
function finishedResults(state: TaskState): SynthesisToolResult[] {
  return state.toolCalls.flatMap((call): SynthesisToolResult[] => {
    const outcome = state.toolOutcomes[call.toolCallId]
    if (!outcome) return []
    return [outcome.ok ? { toolCallId: call.toolCallId, toolName: call.toolName, ok: true, result: outcome.result } : { toolCallId: call.toolCallId, toolName: call.toolName, ok: false, errorCode: outcome.errorCode }]
  })
}

/** What a loop has done so far, from the task's state: counts, and the last few results. */
export function loopProgress(state: TaskState): LoopProgress {
  const results = finishedResults(state)
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
      const vars = { input: recorded(state.input, 'input'), route: recorded(state.route, 'route'), tools: tools.list(), loop, progress: loopProgress(state) }
      return withRef(loopPlanningPrompt.render(vars), loopPlanningPrompt)
    },
    reply: { schema: loopPlanningReplySchema(tools, loop) },
    invokedData: (reply, invocation) => ({ ...invocation, iteration: loop.iteration, toolCalls: reply.toolCalls, done: reply.done }),
  }
}

function withRef(prompt: RenderedPrompt, template: { templateId: string; templateVersion: string }): RenderedPrompt & { promptRef: PromptRef } {
  return { ...prompt, promptRef: promptRef(template, prompt) }
}

/** A loop's tool-call counts, overall and per tool. */
export function loopSummary(state: TaskState): LoopSummary {
  const results = finishedResults(state)
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
  const missing = state.toolCalls.find((call) => !(call.toolCallId in state.toolOutcomes))
  if (missing) throw brokenInvariant(`tool call ${missing.toolCallId} has no recorded outcome`)
  const results = finishedResults(state)
  const sample = results.length <= 2 * LOOP_SAMPLE_RESULTS ? results : [...results.slice(0, LOOP_SAMPLE_RESULTS), ...results.slice(-LOOP_SAMPLE_RESULTS)]
  const vars = { input: recorded(state.input, 'input'), route: recorded(state.route, 'route'), summary: loopSummary(state), sample }
  return withRef(loopSynthesisPrompt.render(vars), loopSynthesisPrompt)
}
