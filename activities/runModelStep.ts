import { ApplicationFailure } from '@temporalio/activity'
import type { z } from 'zod'
import type { EventOfType, ModelErrorCode, ModelFailedEventType, ModelFailure, ModelInvocation, ModelInvokedEventType, PromptRef, StructuredOutput } from '../historian/events'
import type { Historian, StoredEvent, TaskStream } from '../historian/historian'
import { foldTask, type TaskState } from '../historian/taskState'
import { MODEL_CALL_ATTEMPTS } from '../workflows/api'
import { withHeartbeat, type ActivityScope } from './activityScope'
import { activityEvent } from './activityEvent'
import type { ModelCallResult, ModelClient, ModelRole } from './models/modelClient'
import { ModelCallError } from './models/modelErrors'
import { recordAttemptFailure, recordOnce, type RecordedOutcome } from './recordOnce'

/** How a step reads its model's reply: a structured value of a schema (asked for in the role's dialect), or text. */
export type ModelStepReply<Parsed> = { readonly schema: z.ZodType<Parsed> } | { readonly parseText: (text: string) => Parsed }

/** What distinguishes one model-backed step (routing, planning, loop planning, synthesis) from another. */
export interface ModelStepSpec<Parsed, Invoked extends ModelInvokedEventType = ModelInvokedEventType> {
  readonly role: ModelRole
  readonly invokedType: Invoked
  readonly failedType: ModelFailedEventType
  /** Renders this step's prompt from the task as recorded so far. */
  readonly render: (state: TaskState) => { system: string; prompt: string; promptRef: PromptRef }
  /** The reply's shape; `parseText` throws ModelCallError(MODEL_OUTPUT_MALFORMED) when a text reply does not fit. */
  readonly reply: ModelStepReply<Parsed>
  /** The invoked event's data: the model invocation plus the step's own fields from its parsed reply. */
  readonly invokedData: (parsed: Parsed, invocation: ModelInvocation) => EventOfType<Invoked>['data']
}

export interface ModelStepDeps {
  readonly historian: Historian
  readonly models: ModelClient
  readonly clock: () => Date
}

/** Error codes of replies that came back unusable: the ones the step's one repair call may fix by re-asking. */
const REPAIRABLE: ReadonlySet<ModelErrorCode> = new Set(['MODEL_OUTPUT_MALFORMED', 'MODEL_OUTPUT_TRUNCATED'])

/** The recorded failed model calls of this step's activity in this Temporal run, in stream order. */
function recordedFailures(stream: TaskStream, scope: Pick<ActivityScope, 'runId' | 'activityId'>, failedType: string): StoredEvent[] {
  return stream.events.filter(
    (stored) => stored.event.type === failedType && stored.event.metadata.runId === scope.runId && stored.event.metadata.activityId === scope.activityId,
  )
}

/**
 * How many model calls of this activity already failed and were recorded: the `failedType` events of this Temporal run
 * and activity, repairs included. Calls lost to a crash, a Temporal restart or a store outage recorded nothing, so they
 * do not count against the step's MODEL_CALL_ATTEMPTS.
 */
export function modelCallsFailed(stream: TaskStream, scope: Pick<ActivityScope, 'runId' | 'activityId'>, failedType: string): number {
  return recordedFailures(stream, scope, failedType).length
}

/** A repair the step still owes: its last recorded call was malformed and said a repair follows, which was never recorded. */
function owedRepair(failures: readonly StoredEvent[]): { reply: string; problem: string } | undefined {
  const last = failures.at(-1)?.event.data as Partial<ModelFailure> | undefined
  if (!last?.willRepair || typeof last.responseText !== 'string') return undefined
  return { reply: last.responseText, problem: problemOf(last.message ?? '') }
}

/** The validation problem of a recorded failure message (`<what>: <problem>`), which a repair call quotes back. */
function problemOf(message: string): string {
  const at = message.indexOf(': ')
  return at < 0 ? message : message.slice(at + 2)
}

function invocationOf(reply: ModelCallResult<unknown>, promptRef: PromptRef, callIndex: number, structuredOutput: StructuredOutput | null): ModelInvocation {
  return {
    model: reply.modelRef,
    prompt: promptRef,
    responseText: reply.text,
    usage: reply.usage,
    latencyMs: reply.latencyMs,
    finishReason: reply.finishReason,
    systemFingerprint: reply.systemFingerprint,
    callIndex,
    structuredOutput,
  }
}

/**
 * Runs one model step inside the idempotent boundary.
 * - A structured step asks for its schema in the role's dialect. A reply that comes back unusable (malformed, or cut off
 *   at the token limit) is recorded, with its usage, and then re-asked once with the validation error: the step's one
 *   repair, made in the same attempt. A SIGKILL between the two loses nothing: the next attempt finds the recorded reply
 *   and makes the repair call, not the first call again.
 * - Every call counts against MODEL_CALL_ATTEMPTS (the repair too), counted from the recorded failed calls. A retryable
 *   failure with calls and Temporal attempts left is recorded and rethrown for Temporal to retry; a final failure becomes
 *   the step's recorded outcome and is thrown as a non-retryable ApplicationFailure typed with its error code, on this
 *   attempt and any later one.
 */
export async function runModelStep<Parsed, Invoked extends ModelInvokedEventType>(deps: ModelStepDeps, scope: ActivityScope, spec: ModelStepSpec<Parsed, Invoked>): Promise<RecordedOutcome> {
  const outcome = await recordOnce({
    historian: deps.historian,
    scope,
    work: async (stream) => {
      const state = foldTask(stream.events.map((stored) => stored.event))
      const { system, prompt, promptRef } = spec.render(state)
      // A replay may run this role on another model (TaskRunStarted's overrides); the recorded events name the one that answered.
      const modelOverride = state.overrides?.models[spec.role]
      const schema = 'schema' in spec.reply ? spec.reply.schema : undefined
      const failures = recordedFailures(stream, scope, spec.failedType)
      let failedCalls = failures.length
      let repair = owedRepair(failures)
      const repairAsked = failures.some((stored) => (stored.event.data as Partial<ModelFailure>).willRepair === true)
      let causationId = stream.events.at(-1)?.eventId ?? null
      for (;;) {
        const isRepair = repair !== undefined
        const callIndex = failedCalls
        const context = { tenantId: scope.tenantId, taskId: scope.taskId, activityId: scope.activityId, attempt: scope.attempt, runId: scope.runId, callIndex, abortSignal: scope.abortSignal }
        const startedAt = Date.now()
        try {
          const reply = await withHeartbeat(scope, () =>
            deps.models.call(spec.role, { system, prompt }, context, { ...(schema ? { schema } : {}), ...(repair ? { repair } : {}), ...(modelOverride ? { modelId: modelOverride } : {}) }),
          )
          try {
            const parsed = 'schema' in spec.reply ? (reply.structured as { value: Parsed }).value : spec.reply.parseText(reply.text)
            const structuredOutput = reply.structured ? { dialect: reply.structured.dialect, path: isRepair ? 'repaired' : reply.structured.path } as const : null
            const data = spec.invokedData(parsed, invocationOf(reply, promptRef, callIndex, structuredOutput))
            return [activityEvent(spec.invokedType, data, scope, deps.clock(), causationId)]
          } catch (error) {
            // A text reply the step cannot use is malformed like a structured one: it keeps the reply's usage.
            if (!(error instanceof ModelCallError)) throw error
            throw new ModelCallError(error.code, error.message, { retryable: error.retryable, latencyMs: reply.latencyMs, modelRef: reply.modelRef, usage: reply.usage, reply: { ...reply }, problem: error.problem ?? error.message })
          }
        } catch (error) {
          if (!(error instanceof ModelCallError)) throw error
          const callsLeft = MODEL_CALL_ATTEMPTS - (failedCalls + 1)
          const willRepair = schema !== undefined && !repairAsked && !isRepair && error.reply !== null && REPAIRABLE.has(error.code) && callsLeft > 0
          const willRetry = willRepair || (error.retryable && scope.hasAttemptsLeft && callsLeft > 0)
          const failure: ModelFailure = {
            model: error.modelRef ?? deps.models.modelRef(spec.role, modelOverride),
            prompt: promptRef,
            errorCode: error.code,
            message: error.message,
            willRetry,
            latencyMs: Date.now() - startedAt,
            usage: error.usage,
            finishReason: error.reply?.finishReason ?? null,
            systemFingerprint: error.reply?.systemFingerprint ?? null,
            callIndex,
            dialect: schema ? deps.models.roleModel(spec.role, modelOverride).dialect : null,
            responseText: REPAIRABLE.has(error.code) ? (error.reply?.text ?? null) : null,
            willRepair,
            isRepair,
          }
          const event = activityEvent(spec.failedType, failure, scope, deps.clock(), causationId)
          if (!willRetry) return [event]
          const eventId = await recordAttemptFailure(deps.historian, scope, event, isRepair ? 'repair' : 'call')
          if (!willRepair) throw ApplicationFailure.create({ message: error.message, type: error.code, nonRetryable: false })
          // The malformed reply and its cost are on record; now the step's one repair, in this attempt.
          repair = { reply: error.reply!.text, problem: error.problem ?? error.message }
          failedCalls += 1
          causationId = eventId
        }
      }
    },
  })
  const first = outcome.events[0]
  if (first && first.type === spec.failedType && 'errorCode' in first.data) {
    throw ApplicationFailure.create({ message: first.data.message, type: first.data.errorCode, nonRetryable: true })
  }
  return outcome
}
