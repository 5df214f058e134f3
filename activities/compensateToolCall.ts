import type { AnnalistEvent, EventOfType } from '../historian/events'
import { compensationIdempotencyKey } from '../historian/eventIds'
import type { StoredEvent, TaskStream } from '../historian/historian'
import type { TaskRef } from '../workflows/api'
import { currentActivityScope, withHeartbeat, type ActivityScope } from './activityScope'
import { activityEvent } from './activityEvent'
import { brokenInvariant } from './failures'
import type { ActivityDeps } from './activityDeps'
import { recordOnce, type RecordedOutcome } from './recordOnce'

/** Which tool call of a task to compensate. */
export interface CompensateToolCallInput extends TaskRef {
  readonly toolCallId: string
}

/** What the compensation recorded: ToolCallCompensated (ok) or ToolCompensationFailed, and that event's ID. */
export interface CompensateToolCallResult {
  readonly ok: boolean
  readonly compensationId?: string
  readonly errorCode?: string
  readonly eventId: string
}

/** Error codes of ToolCompensationFailed. */
export const CompensationErrorCode = {
  failed: 'COMPENSATION_ERROR',
  timedOut: 'COMPENSATION_TIMEOUT',
} as const

/** The last recorded outcome (executed or failed) of a tool call in the stream. */
function lastToolOutcome(stream: TaskStream, toolCallId: string): StoredEvent | undefined {
  return stream.events.findLast(
    (stored) => (stored.event.type === 'ToolCallExecuted' || stored.event.type === 'ToolCallFailed') && stored.event.data.toolCallId === toolCallId,
  )
}

/** The recorded outcome of a compensation of a tool call (ToolCallCompensated or ToolCompensationFailed), if any. */
function compensationOutcome(events: readonly StoredEvent[], toolCallId: string): StoredEvent | undefined {
  return events.findLast(
    (stored) => (stored.event.type === 'ToolCallCompensated' || stored.event.type === 'ToolCompensationFailed') && stored.event.data.toolCallId === toolCallId,
  )
}

/** The events of the task's current pipeline run: from its last AgentTaskReceived or TaskRunStarted on. */
function currentRunEvents(stream: TaskStream): readonly StoredEvent[] {
  const start = stream.events.findLastIndex((stored) => stored.event.type === 'AgentTaskReceived' || stored.event.type === 'TaskRunStarted')
  return start < 0 ? stream.events : stream.events.slice(start)
}

/** A recorded side effect that can be compensated: its tool call's recorded outcome and the compensation's facts. */
interface CompensableSideEffect {
  readonly outcome: StoredEvent & { event: { type: 'ToolCallExecuted' | 'ToolCallFailed' } }
  readonly facts: { toolCallId: string; toolName: string; sideEffectId: string; idempotencyKey: string }
}

/**
 * The side effect a tool call recorded and how its compensation is keyed, or why it cannot be compensated. A failed
 * call counts too when it recorded a side effect (a side-effecting tool whose response was malformed: the effect may
 * have happened). The compensation's idempotency key derives from the call's own activity, so every attempt, and the
 * workflow's record of a compensation that never answered, name the same compensation.
 */
function compensableSideEffect(stream: TaskStream, toolCallId: string, tools: ActivityDeps['tools']): CompensableSideEffect | { problem: string } {
  const outcome = lastToolOutcome(stream, toolCallId)
  if (outcome?.event.type !== 'ToolCallExecuted' && outcome?.event.type !== 'ToolCallFailed') return { problem: 'it has no recorded outcome' }
  const { data, metadata } = outcome.event
  if (data.sideEffectId === null) return { problem: 'it recorded no side effect' }
  if (!tools.get(data.toolName)?.compensate) return { problem: `tool ${data.toolName} has no compensation` }
  const idempotencyKey = compensationIdempotencyKey(metadata.workflowId, metadata.runId, metadata.activityId)
  return { outcome: outcome as CompensableSideEffect['outcome'], facts: { toolCallId: data.toolCallId, toolName: data.toolName, sideEffectId: data.sideEffectId, idempotencyKey } }
}

/** A builder of a compensation's outcome event, caused by the side effect's recorded outcome. */
function compensationEvent(scope: ActivityScope, clock: () => Date, causationId: string) {
  return <T extends 'ToolCallCompensated' | 'ToolCompensationFailed'>(type: T, data: EventOfType<T>['data']) => activityEvent(type, data, scope, clock(), causationId)
}

/** A side effect of the current run that no compensation has answered for yet, as sideEffectsToCompensate returns it. */
export interface SideEffectToCompensate {
  readonly toolCallId: string
  readonly sideEffectId: string
}

/**
 * The side effects of the task's current run that are still to be compensated, in the order they were recorded: every
 * tool call outcome (executed, or failed with a side effect) whose tool can undo it and whose compensation has recorded
 * nothing yet. Read from the stream, not from what the workflow saw, so a side effect whose activity result never
 * reached the workflow (its worker died right after the append, then the run was cancelled) is undone too.
 */
export function sideEffectsToCompensate(stream: TaskStream, tools: ActivityDeps['tools']): SideEffectToCompensate[] {
  const run = currentRunEvents(stream)
  const toolCallIds = [...new Set(run.flatMap((stored) => (stored.event.type === 'ToolCallExecuted' || stored.event.type === 'ToolCallFailed' ? [stored.event.data.toolCallId] : [])))]
  return toolCallIds.flatMap((toolCallId) => {
    const found = compensableSideEffect(stream, toolCallId, tools)
    if ('problem' in found || compensationOutcome(run, toolCallId)) return []
    return [{ toolCallId, sideEffectId: found.facts.sideEffectId }]
  })
}

/**
 * Creates the compensateToolCall activity: undoes the side effect of one executed tool call of a task that failed
 * afterwards (saga style), inside recordOnce like every activity. It reads the call's recorded ToolCallExecuted (and
 * refuses, non-retryably, a call that has none, left no side effect, or whose tool has no compensation), calls the tool's
 * `compensate` with the compensation idempotency key, and appends ToolCallCompensated; when the last attempt fails, it
 * appends ToolCompensationFailed instead and returns normally, so the workflow goes on to record the task's failure.
 */
export function createCompensateToolCall(deps: Pick<ActivityDeps, 'historian' | 'tools' | 'clock'>) {
  return async function compensateToolCall(input: CompensateToolCallInput): Promise<CompensateToolCallResult> {
    const scope = currentActivityScope(input)
    const outcome = await recordOnce({
      historian: deps.historian,
      scope,
      work: async (stream) => {
        // A zombie attempt, after the workflow recorded that the compensation gave up (recordCompensationFailed): no more.
        const { outcome: executed, facts } = sideEffectToUndo(stream, input, deps.tools, 'compensate')
        const { data } = executed.event
        const compensate = deps.tools.get(data.toolName)!.compensate!
        const event = compensationEvent(scope, deps.clock, executed.eventId)
        const startedAt = Date.now()
        let compensationId: string
        try {
          ;({ compensationId } = await withHeartbeat(scope, () =>
            compensate({
              tenantId: scope.tenantId,
              taskId: scope.taskId,
              toolCallId: data.toolCallId,
              parameters: data.parameters,
              sideEffectId: facts.sideEffectId,
              result: executed.event.type === 'ToolCallExecuted' ? executed.event.data.result : null,
              callIdempotencyKey: data.idempotencyKey,
              idempotencyKey: facts.idempotencyKey,
              attempt: scope.attempt,
              abortSignal: scope.abortSignal,
            }),
          ))
        } catch (error) {
          if (scope.hasAttemptsLeft) throw error
          throwIfCompensationRecorded(await deps.historian.readTask(input.tenantId, input.taskId), input.toolCallId)
          const errorCode = scope.abortSignal.aborted ? CompensationErrorCode.timedOut : CompensationErrorCode.failed
          const message = `compensation of ${data.toolName} failed on its last attempt: ${error instanceof Error ? error.message : String(error)}`
          return [event('ToolCompensationFailed', { ...facts, latencyMs: Date.now() - startedAt, errorCode, message: message.slice(0, 2_000) })]
        }
        return [event('ToolCallCompensated', { ...facts, latencyMs: Date.now() - startedAt, compensationId })]
      },
    }).catch(recordedElsewhere)
    return compensationResult(outcome.events[0], outcome.eventIds[0]!)
  }
}

/** A compensation whose activity failed for good without recording anything: why, as the workflow saw it. */
export interface CompensationFailureInput extends TaskRef {
  readonly toolCallId: string
  /** The compensation activity's failure: COMPENSATION_TIMEOUT when Temporal timed its last attempt out. */
  readonly errorCode: (typeof CompensationErrorCode)[keyof typeof CompensationErrorCode]
  readonly message: string
  /** From scheduling the compensation to its failure, in workflow time. */
  readonly latencyMs: number
}

/**
 * Creates the sideEffectsToCompensate activity (reads the stream, records nothing) and the recordCompensationFailed
 * activity: the workflow's record of a compensation whose activity failed for good without recording an outcome (its
 * last attempt timed out, or its worker died), as ToolCompensationFailed, so that a side effect left standing is never
 * only in Temporal's history. When the compensation did record an outcome after all, that outcome is returned instead.
 */
export function createCompensationRecords(deps: Pick<ActivityDeps, 'historian' | 'tools' | 'clock'>) {
  async function listSideEffectsToCompensate(input: TaskRef): Promise<SideEffectToCompensate[]> {
    return sideEffectsToCompensate(await deps.historian.readTask(input.tenantId, input.taskId), deps.tools)
  }

  async function recordCompensationFailed(input: CompensationFailureInput): Promise<CompensateToolCallResult> {
    const scope = currentActivityScope(input)
    const outcome = await recordOnce({
      historian: deps.historian,
      scope,
      work: async (stream) => {
        const found = sideEffectToUndo(stream, input, deps.tools, 'record the compensation of')
        const event = compensationEvent(scope, deps.clock, found.outcome.eventId)
        return [event('ToolCompensationFailed', { ...found.facts, latencyMs: input.latencyMs, errorCode: input.errorCode, message: input.message.slice(0, 2_000) })]
      },
    }).catch(recordedElsewhere)
    return compensationResult(outcome.events[0], outcome.eventIds[0]!)
  }

  return { sideEffectsToCompensate: listSideEffectsToCompensate, recordCompensationFailed }
}

/** Thrown inside recordOnce when another activity recorded the compensation's outcome: nothing more to record. */
class CompensationAlreadyRecorded extends Error {
  constructor(readonly recorded: StoredEvent) {
    super(`the compensation already recorded ${recorded.event.type}`)
  }
}

/** Throws CompensationAlreadyRecorded when the current run of the stream has an outcome of the tool call's compensation. */
function throwIfCompensationRecorded(stream: TaskStream, toolCallId: string): void {
  const recorded = compensationOutcome(currentRunEvents(stream), toolCallId)
  if (recorded) throw new CompensationAlreadyRecorded(recorded)
}

/**
 * The side effect a compensation of `input` undoes: CompensationAlreadyRecorded when the run already has the outcome of
 * that compensation, a broken invariant (saying what could not be done) when there is nothing it could undo.
 */
function sideEffectToUndo(stream: TaskStream, input: CompensateToolCallInput, tools: ActivityDeps['tools'], doing: string): CompensableSideEffect {
  throwIfCompensationRecorded(stream, input.toolCallId)
  const found = compensableSideEffect(stream, input.toolCallId, tools)
  if ('problem' in found) throw brokenInvariant(`cannot ${doing} tool call ${input.toolCallId} of ${input.tenantId}/${input.taskId}: ${found.problem}`)
  return found
}

/** The outcome another activity recorded, as this one's (CompensationAlreadyRecorded); any other error is rethrown. */
function recordedElsewhere(error: unknown): RecordedOutcome {
  if (error instanceof CompensationAlreadyRecorded) return { events: [error.recorded.event], eventIds: [error.recorded.eventId], recordedNow: false }
  throw error
}

/** What a compensation's recorded outcome event says, as its activities return it. */
function compensationResult(recorded: AnnalistEvent | undefined, eventId: string): CompensateToolCallResult {
  if (recorded?.type === 'ToolCallCompensated') return { ok: true, compensationId: recorded.data.compensationId, eventId }
  if (recorded?.type === 'ToolCompensationFailed') return { ok: false, errorCode: recorded.data.errorCode, eventId }
  throw brokenInvariant(`compensation outcome is ${recorded?.type}`)
}
