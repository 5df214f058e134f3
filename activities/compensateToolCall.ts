import type { AnnalistEvent } from '../historian/events'
import { compensationIdempotencyKey } from '../historian/eventIds'
import type { StoredEvent, TaskStream } from '../historian/historian'
import type { TaskRef } from '../workflows/api'
import { currentActivityScope, withHeartbeat, type ActivityScope } from './activityScope'
import { eventMetadata } from './eventMetadata'
import { brokenInvariant } from './failures'
import { matchFault, type FaultPlan } from './faults'
import type { ActivityDeps } from './pipelineActivities'
import { recordOnce } from './recordOnce'

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

/**
 * Creates the compensateToolCall activity: undoes the side effect of one executed tool call of a task that failed
 * afterwards (saga style), inside recordOnce like every activity. It reads the call's recorded ToolCallExecuted (and
 * refuses, non-retryably, a call that has none, left no side effect, or whose tool has no compensation), calls the tool's
 * `compensate` with the compensation idempotency key, and appends ToolCallCompensated; when the last attempt fails, it
 * appends ToolCompensationFailed instead and returns normally, so the workflow goes on to record the task's failure.
 */
export function createCompensateToolCall(deps: Pick<ActivityDeps, 'historian' | 'tools' | 'clock' | 'faults' | 'crashProcess'>) {
  const crash = deps.crashProcess ?? (() => process.kill(process.pid, 'SIGKILL'))
  const crashRules: FaultPlan = { rules: deps.faults?.rules.filter((rule) => rule.kind === 'crash_after_append') ?? [] }
  const crashIfPlanned = (scope: ActivityScope, target: 'compensation' | 'compensation_sent') => {
    if (matchFault(crashRules, { target, tenantId: scope.tenantId, taskId: scope.taskId, attempt: scope.attempt })) crash()
  }

  return async function compensateToolCall(input: CompensateToolCallInput): Promise<CompensateToolCallResult> {
    const scope = currentActivityScope(input)
    const outcome = await recordOnce({
      historian: deps.historian,
      scope,
      work: async (stream) => {
        const executed = lastToolOutcome(stream, input.toolCallId)
        const refuse = (why: string) => brokenInvariant(`cannot compensate tool call ${input.toolCallId} of ${input.tenantId}/${input.taskId}: ${why}`)
        if (executed?.event.type !== 'ToolCallExecuted') throw refuse(executed ? `its recorded outcome is ${executed.event.type}` : 'it has no recorded outcome')
        const { data, metadata } = executed.event
        if (data.sideEffectId === null) throw refuse('it recorded no side effect')
        const compensate = deps.tools.get(data.toolName)?.compensate
        if (!compensate) throw refuse(`tool ${data.toolName} has no compensation`)
        const idempotencyKey = compensationIdempotencyKey(metadata.workflowId, metadata.runId, metadata.activityId)
        const facts = { toolCallId: data.toolCallId, toolName: data.toolName, sideEffectId: data.sideEffectId, idempotencyKey }
        const event = <T extends 'ToolCallCompensated' | 'ToolCompensationFailed'>(type: T, eventData: Extract<AnnalistEvent, { type: T }>['data']) =>
          ({ type, data: eventData, metadata: eventMetadata(type, scope, deps.clock(), executed.eventId) }) as AnnalistEvent
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
              result: data.result,
              callIdempotencyKey: data.idempotencyKey,
              idempotencyKey,
              attempt: scope.attempt,
              abortSignal: scope.abortSignal,
            }),
          ))
        } catch (error) {
          if (scope.hasAttemptsLeft) throw error
          const errorCode = scope.abortSignal.aborted ? CompensationErrorCode.timedOut : CompensationErrorCode.failed
          const message = `compensation of ${data.toolName} failed on its last attempt: ${error instanceof Error ? error.message : String(error)}`
          return [event('ToolCompensationFailed', { ...facts, latencyMs: Date.now() - startedAt, errorCode, message: message.slice(0, 2_000) })]
        }
        crashIfPlanned(scope, 'compensation_sent')
        return [event('ToolCallCompensated', { ...facts, latencyMs: Date.now() - startedAt, compensationId })]
      },
    })
    if (outcome.recordedNow) crashIfPlanned(scope, 'compensation')
    const recorded = outcome.events[0]
    const eventId = outcome.eventIds[0]!
    if (recorded?.type === 'ToolCallCompensated') return { ok: true, compensationId: recorded.data.compensationId, eventId }
    if (recorded?.type === 'ToolCompensationFailed') return { ok: false, errorCode: recorded.data.errorCode, eventId }
    throw brokenInvariant(`compensation outcome is ${recorded?.type}`)
  }
}
