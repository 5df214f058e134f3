import type pg from 'pg'
import { MODEL_EVENTS, type AnnalistEvent, type ModelStep, type EventMetadata, type ModelRef, type ModelUsage, type PromptRef } from '../../historian/events'
import type { StoredEvent } from '../../historian/historian'
import { forgetTaskRows, insertRows, type Projection, type ProjectionTables, type RowColumn } from '../projection'

/** Name of the cross-tenant analytics projection (its checkpoint and dead-letter key). */
export const ANALYTICS_PROJECTION = 'analytics'

type AnalyticsTable = 'analytics_model_invocations' | 'analytics_step_failures' | 'analytics_tool_calls'


/** What a step failure row records: a failed model attempt, a failed tool call, or the task giving up at that step. */
export const StepFailureKind = { modelAttempt: 'model_attempt', toolCall: 'tool_call', task: 'task' } as const
export type StepFailureKind = (typeof StepFailureKind)[keyof typeof StepFailureKind]

/** One model call, as the analytics_model_invocations row stores it. */
interface InvocationFact {
  step: ModelStep
  outcome: 'ok' | 'failed'
  model: ModelRef
  prompt: PromptRef
  latencyMs: number
  /** The call's usage as its event records it: what the provider reported, or (`usageReported` false) the estimate. */
  inputTokens: number
  outputTokens: number
  costUsd: number
  usageReported: boolean
  errorCode: string | null
}

/** What one event contributes to the analytics tables; most events contribute to one or two of them. */
interface AnalyticsFacts {
  invocation?: InvocationFact
  failure?: { step: string; kind: StepFailureKind; errorCode: string }
  toolCall?: { toolName: string; outcome: 'ok' | 'failed'; errorCode: string | null; latencyMs: number }
}

/** A model call's usage as an invocation row holds it: reported, or the flagged estimate of a call that reported nothing. */
function usageFacts(usage: ModelUsage) {
  return { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, costUsd: usage.costUsd, usageReported: usage.reported }
}

/** The analytics facts of one event, taken from the event alone. */
export function analyticsFacts(event: AnnalistEvent): AnalyticsFacts {
  switch (event.type) {
    case 'RoutingModelInvoked':
    case 'PlanCreated':
    case 'PlanIterationCreated':
    case 'SynthesisModelInvoked': {
      const { model, prompt, usage, latencyMs } = event.data
      return {
        invocation: {
          step: MODEL_EVENTS[event.type].step,
          outcome: 'ok',
          model,
          prompt,
          latencyMs,
          ...usageFacts(usage),
          errorCode: null,
        },
      }
    }
    case 'RoutingModelFailed':
    case 'PlanningModelFailed':
    case 'SynthesisModelFailed': {
      const { model, prompt, latencyMs, errorCode, usage } = event.data
      const { step } = MODEL_EVENTS[event.type]
      return {
        invocation: {
          step,
          outcome: 'failed',
          model,
          prompt,
          latencyMs,
          ...usageFacts(usage),
          errorCode,
        },
        failure: { step, kind: StepFailureKind.modelAttempt, errorCode },
      }
    }
    case 'ToolCallExecuted':
      return { toolCall: { toolName: event.data.toolName, outcome: 'ok', errorCode: null, latencyMs: event.data.latencyMs } }
    case 'ToolCallFailed':
      return {
        toolCall: { toolName: event.data.toolName, outcome: 'failed', errorCode: event.data.errorCode, latencyMs: event.data.latencyMs },
        failure: { step: 'tools', kind: StepFailureKind.toolCall, errorCode: event.data.errorCode },
      }
    case 'AgentTaskFailed':
      return { failure: { step: event.data.failedStep, kind: StepFailureKind.task, errorCode: event.data.errorCode } }
    case 'ToolCompensationFailed':
      return { failure: { step: 'tools', kind: StepFailureKind.toolCall, errorCode: event.data.errorCode } }
    case 'AgentTaskReceived':
    case 'AgentTaskCompleted':
    case 'AgentTaskCancelled':
    case 'TaskRunStarted':
    case 'TaskRunContinued':
    case 'TaskDeadLettered':
    case 'RedriveRequested':
    case 'ToolCallCompensated':
    case 'StreamLifecycleDecided':
      return {}
  }
}

/** The columns every analytics row starts with. */
function rowKey(position: bigint, metadata: EventMetadata): [string, string, string] {
  return [position.toString(), metadata.tenantId, metadata.taskId]
}

const columns = (pairs: readonly (readonly [string, string])[]): readonly RowColumn[] => pairs.map(([name, type]) => ({ name, type }))

const KEY_COLUMNS = [
  ['position', 'bigint'],
  ['tenant_id', 'text'],
  ['task_id', 'text'],
] as const

const INVOCATION_COLUMNS = columns([
  ...KEY_COLUMNS,
  ['step', 'text'],
  ['outcome', 'text'],
  ['attempt', 'integer'],
  ['provider', 'text'],
  ['model_id', 'text'],
  ['model_version', 'text'],
  ['prompt_template_id', 'text'],
  ['prompt_template_version', 'text'],
  ['latency_ms', 'double precision'],
  ['input_tokens', 'integer'],
  ['output_tokens', 'integer'],
  ['cost_usd', 'numeric'],
  ['error_code', 'text'],
  ['occurred_at', 'timestamptz'],
  ['usage_reported', 'boolean'],
])
const FAILURE_COLUMNS = columns([...KEY_COLUMNS, ['step', 'text'], ['kind', 'text'], ['error_code', 'text'], ['attempt', 'integer'], ['occurred_at', 'timestamptz']])
const TOOL_CALL_COLUMNS = columns([
  ...KEY_COLUMNS,
  ['tool_name', 'text'],
  ['outcome', 'text'],
  ['error_code', 'text'],
  ['latency_ms', 'double precision'],
  ['occurred_at', 'timestamptz'],
])

/** The rows a batch of events adds to each analytics table, in the tables' column orders. */
function analyticsRows(events: readonly StoredEvent[]): Record<AnalyticsTable, unknown[][]> {
  const rows: Record<AnalyticsTable, unknown[][]> = { analytics_model_invocations: [], analytics_step_failures: [], analytics_tool_calls: [] }
  for (const stored of events) {
    const { metadata } = stored.event
    const facts = analyticsFacts(stored.event)
    const key = rowKey(stored.position, metadata)
    if (facts.invocation) {
      const { step, outcome, model, prompt, latencyMs, inputTokens, outputTokens, costUsd, usageReported, errorCode } = facts.invocation
      rows.analytics_model_invocations.push([
        ...key,
        step,
        outcome,
        metadata.attempt,
        model.provider,
        model.modelId,
        model.modelVersion,
        prompt.templateId,
        prompt.templateVersion,
        latencyMs,
        inputTokens,
        outputTokens,
        String(costUsd),
        errorCode,
        metadata.occurredAt,
        usageReported,
      ])
    }
    if (facts.failure) {
      const { step, kind, errorCode } = facts.failure
      rows.analytics_step_failures.push([...key, step, kind, errorCode, metadata.attempt, metadata.occurredAt])
    }
    if (facts.toolCall) {
      const { toolName, outcome, errorCode, latencyMs } = facts.toolCall
      rows.analytics_tool_calls.push([...key, toolName, outcome, errorCode, latencyMs, metadata.occurredAt])
    }
  }
  return rows
}

const ON_POSITION_CONFLICT = 'on conflict (position) do nothing'

/**
 * Cross-tenant analytics facts: model invocations, step failures and tool calls, one row per event per table, keyed
 * by global position (applying an event twice inserts nothing). A model invocation row holds the call's usage whether
 * it succeeded or failed, with `usage_reported` telling a provider's figures from an estimate. Every value,
 * `occurred_at` included, comes from the event, so a rebuild from position 0 gives identical rows. A batch is one
 * multi-row insert per table; `apply` is the batch of one event.
 */
export function analyticsProjection(): Projection<AnalyticsTable> {
  const applyBatch = async (client: pg.PoolClient, events: readonly StoredEvent[], tables: ProjectionTables<AnalyticsTable>): Promise<void> => {
    const rows = analyticsRows(events)
    await insertRows(client, tables.analytics_model_invocations, INVOCATION_COLUMNS, rows.analytics_model_invocations, ON_POSITION_CONFLICT)
    await insertRows(client, tables.analytics_step_failures, FAILURE_COLUMNS, rows.analytics_step_failures, ON_POSITION_CONFLICT)
    await insertRows(client, tables.analytics_tool_calls, TOOL_CALL_COLUMNS, rows.analytics_tool_calls, ON_POSITION_CONFLICT)
  }
  return {
    name: ANALYTICS_PROJECTION,
    forgetTask: forgetTaskRows(),
    tables: ['analytics_model_invocations', 'analytics_step_failures', 'analytics_tool_calls'],
    applyBatch,
    apply: (client, stored, tables) => applyBatch(client, [stored], tables),
  }
}
