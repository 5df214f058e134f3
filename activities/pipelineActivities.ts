import { createHash } from 'node:crypto'
import type { EventOfType, PlannedToolCall } from '../historian/events'
import { outcomeEventId, toolIdempotencyKey } from '../historian/eventIds'
import { foldTask } from '../historian/taskState'
import type { TaskRef } from '../workflows/api'
import { activityEvent, lastEventIdOf } from './activityEvent'
import { currentActivityScope, withHeartbeat } from './activityScope'
import { deadLetterFor, type TaskFailure } from './taskDeadLetter'
import { brokenInvariant } from './failures'
import { runModelStep } from './runModelStep'
import { planningStep, routingStep, synthesisStep } from './pipelineModelSteps'
import { createLoopActivities } from './loopActivities'
import { recordOnce } from './recordOnce'
import { runTool } from './tools/runTool'
import { createCompensateToolCall, createCompensationRecords } from './compensateToolCall'
import { createBeginRun } from './beginRun'
import type { ActivityDeps } from './activityDeps'

/** What AgentTaskCancelled records, as the workflow passes it to cancelTask. */
export type TaskCancellation = EventOfType<'AgentTaskCancelled'>['data']

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

function eventIdOf(outcome: { eventIds: readonly string[] }): string {
  return outcome.eventIds[0]!
}

/** Creates the pipeline's activities. Each runs inside its own idempotent boundary (see recordOnce). */
export function createActivities(deps: ActivityDeps) {

  async function receiveTask(input: TaskRef & { input: string; requestedBy: string }): Promise<{ eventId: string }> {
    const scope = currentActivityScope(input)
    const outcome = await recordOnce({
      historian: deps.historian,
      scope,
      work: async (stream) => [
        activityEvent('AgentTaskReceived', { input: input.input, inputSha256: sha256(input.input), requestedBy: input.requestedBy }, scope, deps.clock(), lastEventIdOf(stream)),
      ],
    })
    return { eventId: eventIdOf(outcome) }
  }

  async function routeTask(task: TaskRef): Promise<{ route: string; eventId: string }> {
    const scope = currentActivityScope(task)
    const outcome = await runModelStep(deps, scope, routingStep)
    const event = outcome.events[0]
    if (event?.type !== 'RoutingModelInvoked') throw brokenInvariant(`routing outcome is ${event?.type}`)
    return { route: event.data.route, eventId: eventIdOf(outcome) }
  }

  async function planTask(task: TaskRef): Promise<{ toolCallIds: string[]; eventId: string }> {
    const scope = currentActivityScope(task)
    const outcome = await runModelStep(deps, scope, planningStep(deps.tools))
    const event = outcome.events[0]
    if (event?.type !== 'PlanCreated') throw brokenInvariant(`planning outcome is ${event?.type}`)
    return { toolCallIds: event.data.toolCalls.map((call) => call.toolCallId), eventId: eventIdOf(outcome) }
  }

  /** Runs one planned tool call; `compensable` when it left a side effect its tool can undo (compensateToolCall). */
  async function executeToolCall(
    input: TaskRef & { toolCallId: string },
  ): Promise<{ ok: boolean; errorCode?: string; eventId: string; sideEffectId?: string; compensable?: boolean }> {
    const scope = currentActivityScope(input)
    const outcome = await recordOnce({
      historian: deps.historian,
      scope,
      work: async (stream) => {
        const state = foldTask(stream.events.map((stored) => stored.event))
        const call: PlannedToolCall | undefined = state.toolCalls.find((candidate) => candidate.toolCallId === input.toolCallId)
        if (!call) throw brokenInvariant(`tool call ${input.toolCallId} is not in the recorded plan of ${input.tenantId}/${input.taskId}`)
        const idempotencyKey = toolIdempotencyKey(scope.workflowId, scope.runId, scope.activityId)
        const startedAt = Date.now()
        const result = await withHeartbeat(scope, () =>
          runTool(deps.tools, call, {
            tenantId: scope.tenantId,
            taskId: scope.taskId,
            toolCallId: call.toolCallId,
            idempotencyKey,
            attempt: scope.attempt,
            abortSignal: scope.abortSignal,
          }),
        )
        const facts = { toolCallId: call.toolCallId, toolName: call.toolName, parameters: call.parameters, idempotencyKey, sideEffectId: result.sideEffectId, latencyMs: Date.now() - startedAt }
        const event = result.ok
          ? activityEvent('ToolCallExecuted', { ...facts, result: result.result }, scope, deps.clock(), lastEventIdOf(stream))
          : activityEvent('ToolCallFailed', { ...facts, errorCode: result.errorCode, message: result.message }, scope, deps.clock(), lastEventIdOf(stream))
        return [event]
      },
    })
    const event = outcome.events[0]
    if (event?.type !== 'ToolCallExecuted' && event?.type !== 'ToolCallFailed') throw brokenInvariant(`tool call outcome is ${event?.type}`)
    if (event?.type === 'ToolCallFailed') return { ok: false, errorCode: event.data.errorCode, eventId: eventIdOf(outcome) }
    const sideEffectId = event.data.sideEffectId ?? undefined
    return { ok: true, eventId: eventIdOf(outcome), sideEffectId, compensable: sideEffectId !== undefined && deps.tools.get(event.data.toolName)?.compensate !== undefined }
  }

  async function synthesizeAnswer(task: TaskRef): Promise<{ eventId: string }> {
    const scope = currentActivityScope(task)
    const outcome = await runModelStep(deps, scope, synthesisStep)
    return { eventId: eventIdOf(outcome) }
  }

  async function completeTask(task: TaskRef): Promise<{ eventId: string }> {
    const scope = currentActivityScope(task)
    const outcome = await recordOnce({
      historian: deps.historian,
      scope,
      work: async (stream) => {
        const state = foldTask(stream.events.map((stored) => stored.event))
        if (state.answer === undefined) throw brokenInvariant(`task ${task.tenantId}/${task.taskId} has no synthesized answer to complete with`)
        const outcomes = Object.values(state.toolOutcomes)
        return [
          activityEvent(
            'AgentTaskCompleted',
            {
              answer: state.answer,
              answerSha256: sha256(state.answer),
              totalCostUsd: state.totalCostUsd,
              totalTokens: state.totalTokens,
              toolCallsSucceeded: outcomes.filter((outcome) => outcome.ok).length,
              toolCallsFailed: outcomes.filter((outcome) => !outcome.ok).length,
            },
            scope,
            deps.clock(),
            lastEventIdOf(stream),
          ),
        ]
      },
    })
    return { eventId: eventIdOf(outcome) }
  }

  /** Records that the task gave up and, in the same append, its dead letter when the failed step exhausted its retries (deadLetterFor). */
  async function failTask(input: TaskRef & TaskFailure): Promise<{ eventId: string; deadLettered: boolean }> {
    const scope = currentActivityScope(input)
    const outcome = await recordOnce({
      historian: deps.historian,
      scope,
      work: async (stream) => {
        const failed = activityEvent('AgentTaskFailed', { failedStep: input.failedStep, errorCode: input.errorCode, message: input.message.slice(0, 2_000) }, scope, deps.clock(), lastEventIdOf(stream))
        const decision = deadLetterFor(stream.events, input)
        if (!decision.deadLettered) return [failed]
        const failedEventId = outcomeEventId(scope.workflowId, scope.runId, scope.activityId, 0)
        return [failed, activityEvent('TaskDeadLettered', decision.data, scope, deps.clock(), failedEventId)]
      },
    })
    const deadLettered = outcome.events.some((event) => event.type === 'TaskDeadLettered')
    return { eventId: eventIdOf(outcome), deadLettered }
  }

  /** Records that the run was cancelled: who asked and why (null: from outside Annalist), the step, and how its side effects fared. */
  async function cancelTask(input: TaskRef & TaskCancellation): Promise<{ eventId: string }> {
    const scope = currentActivityScope(input)
    const { cancelledStep, source, requestedBy, reason, sideEffectsCompensated, compensationsFailed } = input
    const outcome = await recordOnce({
      historian: deps.historian,
      scope,
      work: async (stream) => [
        activityEvent('AgentTaskCancelled', { cancelledStep, source, requestedBy, reason, sideEffectsCompensated, compensationsFailed }, scope, deps.clock(), lastEventIdOf(stream)),
      ],
    })
    return { eventId: eventIdOf(outcome) }
  }

  const loop = createLoopActivities(deps)
  const compensationRecords = createCompensationRecords(deps)
  // Error translation and store outages are handled around every activity by the worker's interceptor (activityInterceptors).
  return {
    receiveTask,
    routeTask,
    planTask,
    executeToolCall,
    synthesizeAnswer,
    completeTask,
    failTask,
    cancelTask,
    sideEffectsToCompensate: compensationRecords.sideEffectsToCompensate,
    recordCompensationFailed: compensationRecords.recordCompensationFailed,
    planIteration: loop.planIteration,
    recordRunContinued: loop.recordRunContinued,
    compensateToolCall: createCompensateToolCall(deps),
    beginRun: createBeginRun(deps),
  }
}

/** The activities' interface as the workflow sees it (type-only import there). */
export type PipelineActivities = ReturnType<typeof createActivities>
