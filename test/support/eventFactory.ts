import { createHash } from 'node:crypto'
import { buildEvent, ROUTES_OFFERED_IN_V1, type AnnalistEventType, type EventOfType, type ModelRef, type ModelUsage, type PromptRef } from '../../historian/events'
import { outcomeEventId } from '../../historian/eventIds'
import { streamTail, type Historian, type PendingEvent } from '../../historian/historian'
import type { AppendResult } from '../../historian/port'
import { taskStreamName } from '../../historian/streams'

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

/** Models the factory's events name, by role. */
export const FACTORY_MODELS = {
  routing: { provider: 'scripted', modelId: 'scripted-router', modelVersion: '2026-01' },
  planning: { provider: 'scripted', modelId: 'scripted-planner', modelVersion: '2026-01' },
  synthesis: { provider: 'scripted', modelId: 'scripted-writer', modelVersion: '2026-02' },
} as const satisfies Record<string, ModelRef>

function prompt(templateId: string, text: string): PromptRef {
  return { templateId, templateVersion: '1', ref: `prompt://${templateId}/${sha256(text).slice(0, 16)}`, sha256: sha256(text) }
}

/**
 * Makes valid events of every type for one tenant's task, each with a deterministic event ID and an `occurredAt`
 * one second after the previous one, as a pipeline run would record them.
 */
/** What a successful model call's event records besides the call itself (schema v2 of the model events). */
const REPLY_FACTS = { finishReason: 'stop', systemFingerprint: null, callIndex: 0 } as const
const CONSTRAINED = { dialect: 'json_schema', path: 'constrained' } as const

/** What a failed call used when the factory is not told: nothing reported, a 40-token estimate of the prompt, priced at 0. */
export const UNREPORTED_FAILURE_USAGE: ModelUsage = Object.freeze({ inputTokens: 40, outputTokens: 0, costUsd: 0, reported: false })

/** What a failed call's event records besides the failure: its usage (by default none reported), the attempt's call, no repair. */
function failureFacts(attempt: number, dialect: 'json_schema' | null, usage: ModelUsage) {
  return {
    usage,
    finishReason: null,
    systemFingerprint: null,
    callIndex: attempt - 1,
    dialect,
    responseText: null,
    willRepair: false,
    isRepair: false,
  }
}

export class TaskEventFactory {
  private sequence = 0
  readonly workflowId: string
  readonly runId = 'run-1'

  constructor(
    readonly tenantId: string,
    readonly taskId: string,
    private readonly startAt = new Date('2026-01-15T09:00:00.000Z'),
  ) {
    this.workflowId = `agent-pipeline:${tenantId}:${taskId}`
  }

  private make<T extends AnnalistEventType>(activityId: string, type: T, data: EventOfType<T>['data'], attempt = 1): PendingEvent {
    const n = this.sequence++
    const metadata = {
      tenantId: this.tenantId,
      taskId: this.taskId,
      workflowId: this.workflowId,
      runId: this.runId,
      activityId,
      attempt,
      correlationId: `${this.tenantId}:${this.taskId}`,
      causationId: n === 0 ? null : `${this.workflowId}:${n - 1}`,
      occurredAt: new Date(this.startAt.getTime() + n * 1_000).toISOString(),
      classification: 'internal' as const,
    }
    return { eventId: outcomeEventId(this.workflowId, this.runId, activityId, n), event: buildEvent(type, data, metadata) }
  }

  received(input = 'Summarise the quarterly incident reports'): PendingEvent {
    return this.make('receive', 'AgentTaskReceived', { input, inputSha256: sha256(input), requestedBy: 'analyst@example.test' })
  }

  /** A routing outcome (schema v2); the candidate routes default to the classic five plus `route` if it is another. */
  routingInvoked(route = 'research', usage = { inputTokens: 100, outputTokens: 10, costUsd: 0.0011 }, candidateRoutes?: readonly string[]): PendingEvent {
    return this.make('route', 'RoutingModelInvoked', {
      model: FACTORY_MODELS.routing,
      prompt: prompt('route', 'route prompt'),
      responseText: JSON.stringify({ route }),
      usage: { ...usage, reported: true },
      latencyMs: 120,
      ...REPLY_FACTS,
      structuredOutput: CONSTRAINED,
      route,
      candidateRoutes: [...(candidateRoutes ?? new Set([...ROUTES_OFFERED_IN_V1, route]))],
    })
  }

  routingFailed(willRetry: boolean, attempt = 1, usage: ModelUsage = UNREPORTED_FAILURE_USAGE): PendingEvent {
    return this.make(
      'route',
      'RoutingModelFailed',
      { model: FACTORY_MODELS.routing, prompt: prompt('route', 'route prompt'), errorCode: 'MODEL_TIMEOUT', message: 'timed out', willRetry, latencyMs: 30_000, ...failureFacts(attempt, 'json_schema', usage) },
      attempt,
    )
  }

  planCreated(toolNames: readonly string[] = ['search', 'fetch'], usage = { inputTokens: 300, outputTokens: 40, costUsd: 0.0034 }): PendingEvent {
    return this.make('plan', 'PlanCreated', {
      model: FACTORY_MODELS.planning,
      prompt: prompt('plan', 'plan prompt'),
      responseText: 'plan',
      usage: { ...usage, reported: true },
      latencyMs: 250.5,
      ...REPLY_FACTS,
      structuredOutput: CONSTRAINED,
      toolCalls: toolNames.map((toolName, index) => ({ toolCallId: `call-${index + 1}`, toolName, parameters: { query: 'incidents' } })),
    })
  }

  planningFailed(willRetry: boolean, attempt = 1, usage: ModelUsage = UNREPORTED_FAILURE_USAGE): PendingEvent {
    return this.make(
      'plan',
      'PlanningModelFailed',
      { model: FACTORY_MODELS.planning, prompt: prompt('plan', 'plan prompt'), errorCode: 'MODEL_OUTPUT_MALFORMED', message: 'bad json', willRetry, latencyMs: 80, ...failureFacts(attempt, 'json_schema', usage) },
      attempt,
    )
  }

  toolExecuted(toolCallId = 'call-1', toolName = 'search', sideEffectId: string | null = null): PendingEvent {
    return this.make(`tool-${toolCallId}`, 'ToolCallExecuted', {
      toolCallId,
      toolName,
      parameters: { query: 'incidents' },
      idempotencyKey: `idem-${this.taskId}-${toolCallId}`,
      sideEffectId,
      latencyMs: 42,
      result: { hits: 3 },
    })
  }

  toolFailed(toolCallId = 'call-2', toolName = 'fetch'): PendingEvent {
    return this.make(`tool-${toolCallId}`, 'ToolCallFailed', {
      toolCallId,
      toolName,
      parameters: { url: 'https://example.test' },
      idempotencyKey: `idem-${this.taskId}-${toolCallId}`,
      sideEffectId: null,
      latencyMs: 5_000,
      errorCode: 'TOOL_TIMEOUT',
      message: 'tool timed out',
    })
  }

  synthesisInvoked(answer = 'Three incidents, all resolved.', usage = { inputTokens: 500, outputTokens: 60, costUsd: 0.0075 }): PendingEvent {
    return this.make('synthesize', 'SynthesisModelInvoked', {
      model: FACTORY_MODELS.synthesis,
      prompt: prompt('synthesize', 'synthesis prompt'),
      responseText: answer,
      usage: { ...usage, reported: true },
      latencyMs: 900,
      ...REPLY_FACTS,
      structuredOutput: null,
      answer,
    })
  }

  synthesisFailed(willRetry: boolean, attempt = 1, usage: ModelUsage = UNREPORTED_FAILURE_USAGE): PendingEvent {
    return this.make(
      'synthesize',
      'SynthesisModelFailed',
      {
        model: FACTORY_MODELS.synthesis,
        prompt: prompt('synthesize', 'synthesis prompt'),
        errorCode: 'MODEL_PROVIDER_ERROR',
        message: 'upstream 503',
        willRetry,
        latencyMs: 15,
        ...failureFacts(attempt, null, usage),
      },
      attempt,
    )
  }

  completed(figures: { totalTokens: number; totalCostUsd: number; toolCallsSucceeded: number; toolCallsFailed: number }, answer = 'Three incidents, all resolved.'): PendingEvent {
    return this.make('complete', 'AgentTaskCompleted', { answer, answerSha256: sha256(answer), ...figures })
  }

  failed(failedStep: 'receive' | 'route' | 'plan' | 'tools' | 'synthesize' | 'complete', errorCode: string): PendingEvent {
    return this.make('complete', 'AgentTaskFailed', { failedStep, errorCode, message: `${failedStep} failed` })
  }
}

/**
 * Appends events to a task's stream at its current revision, through the typed Historian (so they are validated).
 * The tail is read raw, so a stream that already holds an unreadable (poison) event can still be appended to; a poison
 * row inserted with SQL has no hash-chain link, so the events after it chain from a zero hash (verify reports the row).
 */
export async function appendTaskEvents(historian: Historian, tenantId: string, taskId: string, pending: readonly PendingEvent[]): Promise<AppendResult> {
  const [last] = await historian.store.readStream(taskStreamName(tenantId, taskId), { direction: 'backwards', maxCount: 1 })
  const tail = streamTail(last)
  return historian.appendToTask(tenantId, taskId, pending, tail.revision !== 'no_stream' && tail.lastHash === undefined ? { ...tail, lastHash: '0'.repeat(64) } : tail)
}
