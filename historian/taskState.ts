import { z } from 'zod'
import { PipelineStepName, PlannedToolCall, RunOverrides, type AnnalistEvent, type ReplayableStep } from './events'

/**
 * Version of the TaskState shape and of what `evolve` computes. Bump it whenever either changes: snapshots record the
 * version they were folded with, and a snapshot of another version is ignored (never trusted), so the fold can evolve.
 */
export const TASK_STATE_VERSION = 4

/** The state of one task as its events describe it. */
export interface TaskState {
  readonly status: 'new' | 'running' | 'completed' | 'failed' | 'cancelled'
  readonly currentStep: PipelineStepName
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
  /** The step a cancelled run was in (AgentTaskCancelled). */
  readonly cancelledStep?: string
  readonly errorCode?: string
  /** The pipeline run the state describes: the Temporal run ID that began it (AgentTaskReceived or TaskRunStarted). */
  readonly runId?: string
  /** For a replay or redrive: the run it started from, why, and what it runs differently. */
  readonly parentRunId?: string
  readonly runReason?: 'replay' | 'redrive'
  readonly overrides?: RunOverrides
  /** Runs of this task so far, the first included. */
  readonly runs: number
  /** Long agent loops: planner iterations so far, and whether the planner said it is done (absent outside loops). */
  readonly iterations: number
  readonly loopDone?: boolean
  /** The task failed by exhausting a step's retries and awaits a redrive (TaskDeadLettered). */
  readonly deadLettered: boolean
  /** How many events have been folded into this state. */
  readonly eventsApplied: number
  /** `occurredAt` of the last event folded (the writer's clock, not the store's). */
  readonly lastOccurredAt?: string
}

/** What one tool call ended with. */
export type ToolOutcomeState =
  | { readonly ok: true; readonly toolName: string; readonly result: unknown; readonly sideEffectId: string | null; readonly compensation?: CompensationState }
  | { readonly ok: false; readonly toolName: string; readonly errorCode: string; readonly message: string }

/** What became of a side effect's compensation (saga style) after its task failed. */
export type CompensationState = { readonly ok: true; readonly compensationId: string } | { readonly ok: false; readonly errorCode: string }

export const initialTaskState: TaskState = {
  status: 'new',
  currentStep: 'receive',
  toolCalls: [],
  toolOutcomes: {},
  totalTokens: 0,
  totalCostUsd: 0,
  modelAttemptsFailed: 0,
  runs: 0,
  iterations: 0,
  deadLettered: false,
  eventsApplied: 0,
}

const CompensationStateSchema = z.union([z.object({ ok: z.literal(true), compensationId: z.string() }), z.object({ ok: z.literal(false), errorCode: z.string() })])

const ToolOutcomeStateSchema = z.union([
  z.object({ ok: z.literal(true), toolName: z.string(), result: z.unknown(), sideEffectId: z.string().nullable(), compensation: CompensationStateSchema.optional() }),
  z.object({ ok: z.literal(false), toolName: z.string(), errorCode: z.string(), message: z.string() }),
])

/** The TaskState shape as a schema: what a stored snapshot's state must match before it is trusted. */
export const TaskStateSchema: z.ZodType<TaskState> = z.object({
  status: z.enum(['new', 'running', 'completed', 'failed', 'cancelled']),
  cancelledStep: z.string().optional(),
  currentStep: PipelineStepName,
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
  runId: z.string().optional(),
  parentRunId: z.string().optional(),
  runReason: z.enum(['replay', 'redrive']).optional(),
  overrides: RunOverrides.optional(),
  runs: z.number().int().nonnegative(),
  iterations: z.number().int().nonnegative(),
  loopDone: z.boolean().optional(),
  deadLettered: z.boolean(),
  eventsApplied: z.number().int().nonnegative(),
  lastOccurredAt: z.string().optional(),
})

/**
 * Adds a call's usage to the task's totals when the provider reported it, whether the call succeeded or failed (a failed
 * call is billed too); an estimate for a call that reported nothing never enters the totals (docs/models.md).
 */
function withUsage(state: TaskState, usage: { inputTokens: number; outputTokens: number; costUsd: number; reported: boolean }): TaskState {
  if (!usage.reported) return state
  return { ...state, totalTokens: state.totalTokens + usage.inputTokens + usage.outputTokens, totalCostUsd: state.totalCostUsd + usage.costUsd }
}

/** The step after a tool outcome: the next planner iteration of an unfinished loop, otherwise synthesis once all are in. */
function stepAfterTools(state: TaskState, toolOutcomes: TaskState['toolOutcomes']): TaskState['currentStep'] {
  if (!state.toolCalls.every((call) => call.toolCallId in toolOutcomes)) return state.currentStep
  return state.loopDone === false ? 'plan' : 'synthesize'
}

/** The state a new run starts from: the parent run's state at the boundary before `fromStep`, outcomes of later steps cleared. */
function startRunFrom(state: TaskState, fromStep: ReplayableStep): TaskState {
  const kept = { ...state, status: 'running' as const, currentStep: fromStep, failedStep: undefined, errorCode: undefined, deadLettered: false, answer: undefined }
  switch (fromStep) {
    case 'route':
      return { ...kept, route: undefined, candidateRoutes: undefined, toolCalls: [], toolOutcomes: {}, iterations: 0, loopDone: undefined }
    case 'plan':
      return { ...kept, toolCalls: [], toolOutcomes: {}, iterations: 0, loopDone: undefined }
    case 'tools':
      return { ...kept, toolOutcomes: {} }
    case 'synthesize':
      return kept
  }
}

function withCompensation(state: TaskState, toolCallId: string, compensation: CompensationState): TaskState {
  const outcome = state.toolOutcomes[toolCallId]
  if (!outcome?.ok) return state
  return { ...state, toolOutcomes: { ...state.toolOutcomes, [toolCallId]: { ...outcome, compensation } } }
}

/** Applies one event to a task's state. Pure: the same events always fold to the same state. */
export function evolve(state: TaskState, event: AnnalistEvent): TaskState {
  const counted: TaskState = { ...state, eventsApplied: state.eventsApplied + 1, lastOccurredAt: event.metadata.occurredAt }
  switch (event.type) {
    case 'AgentTaskReceived':
      return { ...counted, status: 'running', currentStep: 'route', input: event.data.input, runId: event.metadata.runId, runs: counted.runs + 1 }
    case 'TaskRunStarted':
      return {
        ...startRunFrom(counted, event.data.fromStep),
        runId: event.metadata.runId,
        parentRunId: event.data.parentRunId,
        runReason: event.data.reason,
        overrides: event.data.overrides,
        runs: counted.runs + 1,
      }
    case 'TaskRunContinued':
    case 'RedriveRequested':
      return counted
    case 'RoutingModelInvoked':
      return { ...withUsage(counted, event.data.usage), currentStep: 'plan', route: event.data.route, candidateRoutes: event.data.candidateRoutes }
    case 'PlanCreated':
      return { ...withUsage(counted, event.data.usage), currentStep: 'tools', toolCalls: event.data.toolCalls }
    case 'PlanIterationCreated': {
      const iterated: TaskState = {
        ...withUsage(counted, event.data.usage),
        toolCalls: [...counted.toolCalls, ...event.data.toolCalls],
        iterations: event.data.iteration,
        loopDone: event.data.done,
      }
      return { ...iterated, currentStep: event.data.toolCalls.length > 0 ? 'tools' : stepAfterTools(iterated, iterated.toolOutcomes) }
    }
    case 'SynthesisModelInvoked':
      return { ...withUsage(counted, event.data.usage), currentStep: 'complete', answer: event.data.answer }
    case 'RoutingModelFailed':
    case 'PlanningModelFailed':
    case 'SynthesisModelFailed':
      return { ...withUsage(counted, event.data.usage), modelAttemptsFailed: counted.modelAttemptsFailed + 1 }
    case 'ToolCallExecuted':
    case 'ToolCallFailed': {
      const outcome: ToolOutcomeState =
        event.type === 'ToolCallExecuted'
          ? { ok: true, toolName: event.data.toolName, result: event.data.result, sideEffectId: event.data.sideEffectId }
          : { ok: false, toolName: event.data.toolName, errorCode: event.data.errorCode, message: event.data.message }
      const toolOutcomes = { ...counted.toolOutcomes, [event.data.toolCallId]: outcome }
      return { ...counted, toolOutcomes, currentStep: stepAfterTools(counted, toolOutcomes) }
    }
    case 'ToolCallCompensated':
      return withCompensation(counted, event.data.toolCallId, { ok: true, compensationId: event.data.compensationId })
    case 'ToolCompensationFailed':
      return withCompensation(counted, event.data.toolCallId, { ok: false, errorCode: event.data.errorCode })
    case 'AgentTaskCompleted':
      return { ...counted, status: 'completed', currentStep: 'complete' }
    case 'AgentTaskFailed':
      return { ...counted, status: 'failed', failedStep: event.data.failedStep, errorCode: event.data.errorCode }
    case 'AgentTaskCancelled':
      return { ...counted, status: 'cancelled', cancelledStep: event.data.cancelledStep }
    case 'TaskDeadLettered':
      return { ...counted, deadLettered: true }
    case 'StreamLifecycleDecided':
      // Recorded in the tenant's compliance stream, never in a task's: not a fact of the task's run.
      return state
  }
}

/** Folds a task's events, in stream order, into its state. */
export function foldTask(events: Iterable<AnnalistEvent>, from: TaskState = initialTaskState): TaskState {
  let state = from
  for (const event of events) state = evolve(state, event)
  return state
}
