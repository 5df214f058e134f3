import type { AnnalistEvent, PlannedToolCall } from './events'

/** The state of one task as its events describe it. */
export interface TaskState {
  readonly status: 'new' | 'running' | 'completed' | 'failed'
  readonly currentStep: 'receive' | 'route' | 'plan' | 'tools' | 'synthesize' | 'complete'
  readonly input?: string
  readonly route?: string
  readonly toolCalls: readonly PlannedToolCall[]
  readonly toolOutcomes: Readonly<Record<string, ToolOutcomeState>>
  readonly answer?: string
  readonly totalTokens: number
  readonly totalCostUsd: number
  readonly modelAttemptsFailed: number
  readonly failedStep?: string
  readonly errorCode?: string
}

/** What one tool call ended with. */
export type ToolOutcomeState =
  | { readonly ok: true; readonly toolName: string; readonly result: unknown; readonly sideEffectId: string | null }
  | { readonly ok: false; readonly toolName: string; readonly errorCode: string; readonly message: string }

export const initialTaskState: TaskState = {
  status: 'new',
  currentStep: 'receive',
  toolCalls: [],
  toolOutcomes: {},
  totalTokens: 0,
  totalCostUsd: 0,
  modelAttemptsFailed: 0,
}

function withUsage(state: TaskState, usage: { inputTokens: number; outputTokens: number; costUsd: number }): TaskState {
  return { ...state, totalTokens: state.totalTokens + usage.inputTokens + usage.outputTokens, totalCostUsd: state.totalCostUsd + usage.costUsd }
}

/** Applies one event to a task's state. Pure: the same events always fold to the same state. */
export function evolve(state: TaskState, event: AnnalistEvent): TaskState {
  switch (event.type) {
    case 'AgentTaskReceived':
      return { ...state, status: 'running', currentStep: 'route', input: event.data.input }
    case 'RoutingModelInvoked':
      return { ...withUsage(state, event.data.usage), currentStep: 'plan', route: event.data.route }
    case 'PlanCreated':
      return { ...withUsage(state, event.data.usage), currentStep: 'tools', toolCalls: event.data.toolCalls }
    case 'SynthesisModelInvoked':
      return { ...withUsage(state, event.data.usage), currentStep: 'complete', answer: event.data.answer }
    case 'RoutingModelFailed':
    case 'PlanningModelFailed':
    case 'SynthesisModelFailed':
      return { ...state, modelAttemptsFailed: state.modelAttemptsFailed + 1 }
    case 'ToolCallExecuted':
    case 'ToolCallFailed': {
      const outcome: ToolOutcomeState =
        event.type === 'ToolCallExecuted'
          ? { ok: true, toolName: event.data.toolName, result: event.data.result, sideEffectId: event.data.sideEffectId }
          : { ok: false, toolName: event.data.toolName, errorCode: event.data.errorCode, message: event.data.message }
      const toolOutcomes = { ...state.toolOutcomes, [event.data.toolCallId]: outcome }
      const allDone = state.toolCalls.every((call) => call.toolCallId in toolOutcomes)
      return { ...state, toolOutcomes, currentStep: allDone ? 'synthesize' : state.currentStep }
    }
    case 'AgentTaskCompleted':
      return { ...state, status: 'completed', currentStep: 'complete' }
    case 'AgentTaskFailed':
      return { ...state, status: 'failed', failedStep: event.data.failedStep, errorCode: event.data.errorCode }
  }
}

/** Folds a task's events, in stream order, into its state. */
export function foldTask(events: Iterable<AnnalistEvent>, from: TaskState = initialTaskState): TaskState {
  let state = from
  for (const event of events) state = evolve(state, event)
  return state
}
