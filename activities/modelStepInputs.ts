import type { PromptRef } from '../historian/events'
import type { TaskState } from '../historian/taskState'
import { brokenInvariant } from './failures'
import type { RenderedPrompt } from './models/modelClient'
import { promptRef, type PromptTemplate, type SynthesisToolResult } from './models/prompts'

/** A fact a model step's prompt needs from the task's recorded events; a broken invariant when it is not recorded yet. */
export function recordedFact<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw brokenInvariant(`the task's recorded events have no ${what} yet`)
  return value
}

/** Renders a prompt template with its variables, together with the reference and digest its events record. */
export function renderedPrompt<V>(template: PromptTemplate<V, unknown>, vars: V): RenderedPrompt & { promptRef: PromptRef } {
  const prompt = template.render(vars)
  return { ...prompt, promptRef: promptRef(template, prompt) }
}

/** The task's tool calls that have an outcome, in plan order, as prompts show them. */
export function finishedToolResults(state: TaskState): SynthesisToolResult[] {
  return state.toolCalls.flatMap((call): SynthesisToolResult[] => {
    const outcome = state.toolOutcomes[call.toolCallId]
    if (!outcome) return []
    return [outcome.ok ? { toolCallId: call.toolCallId, toolName: call.toolName, ok: true, result: outcome.result } : { toolCallId: call.toolCallId, toolName: call.toolName, ok: false, errorCode: outcome.errorCode }]
  })
}

/** Every planned tool call's result, for synthesis; a broken invariant while one has no recorded outcome. */
export function allToolResults(state: TaskState): SynthesisToolResult[] {
  const missing = state.toolCalls.find((call) => !(call.toolCallId in state.toolOutcomes))
  if (missing) throw brokenInvariant(`tool call ${missing.toolCallId} has no recorded outcome`)
  return finishedToolResults(state)
}
