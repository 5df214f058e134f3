/**
 * The domain catalogue: the pipeline's steps, the step and model role each step event belongs to, and the failure types
 * no retry can fix. Each is defined here once. Plain TypeScript with no imports, so every layer may import it as a
 * value, workflow code too: Temporal's sandbox bundles it without zod or Node (docs/architecture.md).
 */

/** The steps of the pipeline, in order: where a task is, or where it failed (the zod enum: PipelineStepName). */
export const PIPELINE_STEPS = ['receive', 'route', 'plan', 'tools', 'synthesize', 'complete'] as const
type PipelineStep = (typeof PIPELINE_STEPS)[number]

/** The steps a new run (replay or redrive) can start from, in pipeline order: everything after `receive` (zod: ReplayableStep). */
export const REPLAYABLE_STEPS = ['route', 'plan', 'tools', 'synthesize'] as const
type ReplayableStep = (typeof REPLAYABLE_STEPS)[number]

/** The three model roles of the pipeline, one per model-backed step. */
export const ModelRole = { routing: 'routing', planning: 'planning', synthesis: 'synthesis' } as const
export type ModelRole = (typeof ModelRole)[keyof typeof ModelRole]

/** All model roles, in pipeline order. */
export const MODEL_ROLES: readonly ModelRole[] = [ModelRole.routing, ModelRole.planning, ModelRole.synthesis]

/** The step, model role and outcome of every model event: an invocation the step keeps, or a failed call. */
export const MODEL_EVENTS = {
  RoutingModelInvoked: { step: 'route', role: 'routing', outcome: 'invoked' },
  RoutingModelFailed: { step: 'route', role: 'routing', outcome: 'failed' },
  PlanCreated: { step: 'plan', role: 'planning', outcome: 'invoked' },
  PlanIterationCreated: { step: 'plan', role: 'planning', outcome: 'invoked' },
  PlanningModelFailed: { step: 'plan', role: 'planning', outcome: 'failed' },
  SynthesisModelInvoked: { step: 'synthesize', role: 'synthesis', outcome: 'invoked' },
  SynthesisModelFailed: { step: 'synthesize', role: 'synthesis', outcome: 'failed' },
} as const satisfies Record<string, { step: ReplayableStep; role: ModelRole; outcome: 'invoked' | 'failed' }>
export type ModelEventType = keyof typeof MODEL_EVENTS
/** The pipeline steps that call a model. */
export type ModelStep = (typeof MODEL_EVENTS)[ModelEventType]['step']
/** Model events that record a step's usable reply. */
export type ModelInvokedEventType = { [T in ModelEventType]: (typeof MODEL_EVENTS)[T]['outcome'] extends 'invoked' ? T : never }[ModelEventType]
/** Model events that record a failed model call. */
export type ModelFailedEventType = Exclude<ModelEventType, ModelInvokedEventType>

/** The outcome events of a tool call, both of step `tools`. */
export const TOOL_CALL_EVENTS = { ToolCallExecuted: { step: 'tools', outcome: 'executed' }, ToolCallFailed: { step: 'tools', outcome: 'failed' } } as const
export type ToolCallEventType = keyof typeof TOOL_CALL_EVENTS

/** Whether an event type is a model event. */
export function isModelEventType(type: string): type is ModelEventType {
  return Object.hasOwn(MODEL_EVENTS, type)
}

/** Whether an event type records a step's usable model reply. */
export function isModelInvokedEventType(type: string): type is ModelInvokedEventType {
  return isModelEventType(type) && MODEL_EVENTS[type].outcome === 'invoked'
}

/** Whether an event type records a failed model call. */
export function isModelFailedEventType(type: string): type is ModelFailedEventType {
  return isModelEventType(type) && MODEL_EVENTS[type].outcome === 'failed'
}

/** The step an event type records the work of (model calls and tool calls), or undefined for task and run events. */
export function stepOfEventType(type: string): ReplayableStep | undefined {
  if (isModelEventType(type)) return MODEL_EVENTS[type].step
  if (Object.hasOwn(TOOL_CALL_EVENTS, type)) return TOOL_CALL_EVENTS[type as ToolCallEventType].step
  return undefined
}

/** The event types that record a failed attempt at a step: its model's failed calls, or its failed tool calls. */
export function failureEventTypesOf(step: PipelineStep): readonly string[] {
  const failed = [...Object.entries(MODEL_EVENTS), ...Object.entries(TOOL_CALL_EVENTS)].filter(([, fact]) => fact.step === step && fact.outcome === 'failed')
  return failed.map(([type]) => type)
}

/** ApplicationFailure types of the domain errors activities translate (activities/failures.ts); none is retryable. */
export const FailureType = {
  invalidIdentifier: 'INVALID_IDENTIFIER',
  eventSchemaInvalid: 'EVENT_SCHEMA_INVALID',
  unknownEventType: 'UNKNOWN_EVENT_TYPE',
  eventIdConflict: 'EVENT_ID_CONFLICT',
  brokenInvariant: 'BROKEN_INVARIANT',
} as const
export type FailureType = (typeof FailureType)[keyof typeof FailureType]

/**
 * Failure types that no retry can fix: the workflow's retry policy gives up on them at once (`nonRetryableErrorTypes`
 * of every activity it schedules), and a failure of one of them is never dead-lettered (activities/taskDeadLetter.ts).
 */
export const NON_RETRYABLE_FAILURE_TYPES: readonly string[] = [
  'MODEL_CONTEXT_LENGTH_EXCEEDED',
  FailureType.invalidIdentifier,
  FailureType.eventSchemaInvalid,
  FailureType.unknownEventType,
  FailureType.eventIdConflict,
  FailureType.brokenInvariant,
]

/** Why a linked run (replay or redrive) cannot begin; beginRun throws them non-retryable itself. */
export const BeginRunFailureType = {
  checkpointInvalid: 'CHECKPOINT_INVALID',
  overridesInvalid: 'RUN_OVERRIDES_INVALID',
} as const
