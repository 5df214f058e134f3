import { ApplicationFailure } from '@temporalio/activity'
import type { AnnalistEvent, ModelFailure, ModelInvocation, PromptRef } from '../historian/events'
import type { Historian, TaskStream } from '../historian/historian'
import { foldTask, type TaskState } from '../historian/taskState'
import { withHeartbeat, type ActivityScope } from './activityScope'
import { eventMetadata } from './eventMetadata'
import type { ModelClient, ModelRole } from './models/modelClient'
import { ModelCallError } from './models/modelErrors'
import { MODEL_CALL_ATTEMPTS } from '../workflows/api'
import { recordAttemptFailure, recordOnce, type RecordedOutcome } from './recordOnce'

/** What distinguishes one model-backed step (routing, planning, synthesis) from another. */
export interface ModelStepSpec<Parsed> {
  readonly role: ModelRole
  readonly invokedType: 'RoutingModelInvoked' | 'PlanCreated' | 'PlanIterationCreated' | 'SynthesisModelInvoked'
  readonly failedType: 'RoutingModelFailed' | 'PlanningModelFailed' | 'SynthesisModelFailed'
  /** Renders this step's prompt from the task as recorded so far. */
  readonly render: (state: TaskState) => { system: string; prompt: string; promptRef: PromptRef }
  /** Parses the model's reply; throws ModelCallError(MODEL_OUTPUT_MALFORMED) when it does not fit. */
  readonly parse: (text: string) => Parsed
  /** The step-specific fields of the invoked event. */
  readonly invokedData: (parsed: Parsed) => Record<string, unknown>
}

export interface ModelStepDeps {
  readonly historian: Historian
  readonly models: ModelClient
  readonly clock: () => Date
}

function modelEvent(type: string, data: Record<string, unknown>, scope: ActivityScope, now: Date, stream: TaskStream): AnnalistEvent {
  const causationId = stream.events[stream.events.length - 1]?.eventId ?? null
  return { type, data, metadata: eventMetadata(type as AnnalistEvent['type'], scope, now, causationId) } as AnnalistEvent
}

/**
 * How many model calls of this activity already failed and were recorded for a retry: the `failedType` events of this
 * Temporal run and activity. Attempts lost to a crash, a Temporal restart or a store outage recorded nothing, so they
 * do not count against the step's MODEL_CALL_ATTEMPTS.
 */
export function modelCallsFailed(stream: TaskStream, scope: Pick<ActivityScope, 'runId' | 'activityId'>, failedType: string): number {
  return stream.events.filter(
    (stored) => stored.event.type === failedType && stored.event.metadata.runId === scope.runId && stored.event.metadata.activityId === scope.activityId,
  ).length
}

/**
 * Runs one model step inside the idempotent boundary. A retryable failure with model calls left (modelCallsFailed
 * against MODEL_CALL_ATTEMPTS) and Temporal attempts left is recorded as an attempt failure and rethrown for Temporal to retry; a final failure becomes the step's recorded outcome and is
 * thrown as a non-retryable ApplicationFailure typed with its error code, on this attempt and any later one.
 */
export async function runModelStep<Parsed>(deps: ModelStepDeps, scope: ActivityScope, spec: ModelStepSpec<Parsed>): Promise<RecordedOutcome> {
  const outcome = await recordOnce({
    historian: deps.historian,
    scope,
    work: async (stream) => {
      const state = foldTask(stream.events.map((stored) => stored.event))
      const { system, prompt, promptRef } = spec.render(state)
      const context = { tenantId: scope.tenantId, taskId: scope.taskId, activityId: scope.activityId, attempt: scope.attempt, runId: scope.runId, abortSignal: scope.abortSignal }
      // A replay may run this role on another model (TaskRunStarted's overrides); the recorded events name the one that answered.
      const modelOverride = state.overrides?.models[spec.role]
      const startedAt = Date.now()
      let repliedBy = deps.models.modelRef(spec.role, modelOverride)
      try {
        const reply = await withHeartbeat(scope, () => deps.models.call(spec.role, { system, prompt }, context, modelOverride))
        repliedBy = reply.modelRef
        const invocation: ModelInvocation = { model: reply.modelRef, prompt: promptRef, responseText: reply.text, usage: reply.usage, latencyMs: reply.latencyMs }
        return [modelEvent(spec.invokedType, { ...invocation, ...spec.invokedData(spec.parse(reply.text)) }, scope, deps.clock(), stream)]
      } catch (error) {
        if (!(error instanceof ModelCallError)) throw error
        const failure: ModelFailure = {
          model: error.modelRef ?? repliedBy,
          prompt: promptRef,
          errorCode: error.code,
          message: error.message,
          willRetry: error.retryable && scope.hasAttemptsLeft && modelCallsFailed(stream, scope, spec.failedType) + 1 < MODEL_CALL_ATTEMPTS,
          latencyMs: Date.now() - startedAt,
        }
        const event = modelEvent(spec.failedType, failure, scope, deps.clock(), stream)
        if (!failure.willRetry) return [event]
        await recordAttemptFailure(deps.historian, scope, event)
        throw ApplicationFailure.create({ message: error.message, type: error.code, nonRetryable: false })
      }
    },
  })
  const first = outcome.events[0]
  if (first && first.type === spec.failedType && 'errorCode' in first.data) {
    throw ApplicationFailure.create({ message: first.data.message, type: first.data.errorCode, nonRetryable: true })
  }
  return outcome
}
