import { z } from 'zod'
import { PlannedToolCall, type AnnalistEvent } from './events'

/**
 * Version of the TaskState shape and of what `evolve` computes. Bump it whenever either changes: snapshots record the
 * version they were folded with, and a snapshot of another version is ignored (never trusted), so the fold can evolve.
 */
export const TASK_STATE_VERSION = 1

/** The state of one task as its events describe it. */
export interface TaskState {
  readonly status: 'new' | 'running' | 'completed' | 'failed'
  readonly currentStep: 'receive' | 'route' | 'plan' | 'tools' | 'synthesize' | 'complete'
  readonly input?: string
  readonly route?: string
  /** The routes the router was offered (RoutingModelInvoked v2; upcast for v1 events). */
  readonly candidateRoutes?: readonly string[]
  readonly toolCalls: readonly PlannedToolCall[]
  readonly toolOutcomes: Readonly<Record<string, ToolOutcomeState>>
  readonly answer?: string
  readonly totalTokens: number
  readonly totalCostUsd: number
  readonly modelAttemptsFailed: number
  readonly failedStep?: string
  readonly errorCode?: string
  /** How many events have been folded into this state. */
  readonly eventsApplied: number
  /** `occurredAt` of the last event folded (the writer's clock, not the store's). */
  readonly lastOccurredAt?: string
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
  eventsApplied: 0,
}

const ToolOutcomeStateSchema = z.union([
  z.object({ ok: z.literal(true), toolName: z.string(), result: z.unknown(), sideEffectId: z.string().nullable() }),
  z.object({ ok: z.literal(false), toolName: z.string(), errorCode: z.string(), message: z.string() }),
])

/** The TaskState shape as a schema: what a stored snapshot's state must match before it is trusted. */
export const TaskStateSchema: z.ZodType<TaskState> = z.object({
  status: z.enum(['new', 'running', 'completed', 'failed']),
  currentStep: z.enum(['receive', 'route', 'plan', 'tools', 'synthesize', 'complete']),
  input: z.string().optional(),
  route: z.string().optional(),
  candidateRoutes: z.array(z.string()).optional(),
  toolCalls: z.array(PlannedToolCall),
  toolOutcomes: z.record(z.string(), ToolOutcomeStateSchema),
  answer: z.string().optional(),
  totalTokens: z.number().int().nonnegative(),
  totalCostUsd: z.number().nonnegative(),
  modelAttemptsFailed: z.number().int().nonnegative(),
  failedStep: z.string().optional(),
  errorCode: z.string().optional(),
  eventsApplied: z.number().int().nonnegative(),
  lastOccurredAt: z.string().optional(),
})

function withUsage(state: TaskState, usage: { inputTokens: number; outputTokens: number; costUsd: number }): TaskState {
  return { ...state, totalTokens: state.totalTokens + usage.inputTokens + usage.outputTokens, totalCostUsd: state.totalCostUsd + usage.costUsd }
}

/** Applies one event to a task's state. Pure: the same events always fold to the same state. */
export function evolve(state: TaskState, event: AnnalistEvent): TaskState {
  const counted: TaskState = { ...state, eventsApplied: state.eventsApplied + 1, lastOccurredAt: event.metadata.occurredAt }
  switch (event.type) {
    case 'AgentTaskReceived':
      return { ...counted, status: 'running', currentStep: 'route', input: event.data.input }
    case 'RoutingModelInvoked':
      return { ...withUsage(counted, event.data.usage), currentStep: 'plan', route: event.data.route, candidateRoutes: event.data.candidateRoutes }
    case 'PlanCreated':
      return { ...withUsage(counted, event.data.usage), currentStep: 'tools', toolCalls: event.data.toolCalls }
    case 'SynthesisModelInvoked':
      return { ...withUsage(counted, event.data.usage), currentStep: 'complete', answer: event.data.answer }
    case 'RoutingModelFailed':
    case 'PlanningModelFailed':
    case 'SynthesisModelFailed':
      return { ...counted, modelAttemptsFailed: counted.modelAttemptsFailed + 1 }
    case 'ToolCallExecuted':
    case 'ToolCallFailed': {
      const outcome: ToolOutcomeState =
        event.type === 'ToolCallExecuted'
          ? { ok: true, toolName: event.data.toolName, result: event.data.result, sideEffectId: event.data.sideEffectId }
          : { ok: false, toolName: event.data.toolName, errorCode: event.data.errorCode, message: event.data.message }
      const toolOutcomes = { ...counted.toolOutcomes, [event.data.toolCallId]: outcome }
      const allDone = counted.toolCalls.every((call) => call.toolCallId in toolOutcomes)
      return { ...counted, toolOutcomes, currentStep: allDone ? 'synthesize' : counted.currentStep }
    }
    case 'AgentTaskCompleted':
      return { ...counted, status: 'completed', currentStep: 'complete' }
    case 'AgentTaskFailed':
      return { ...counted, status: 'failed', failedStep: event.data.failedStep, errorCode: event.data.errorCode }
  }
}

/** Folds a task's events, in stream order, into its state. */
export function foldTask(events: Iterable<AnnalistEvent>, from: TaskState = initialTaskState): TaskState {
  let state = from
  for (const event of events) state = evolve(state, event)
  return state
}
