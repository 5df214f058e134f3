import type pg from 'pg'
import { MODEL_EVENTS, type AnnalistEvent, type ModelRef, type PromptRef } from '../../historian/events'
import type { StoredEvent } from '../../historian/historian'
import { forgetTaskRows, insertRows, type Projection, type ProjectionTables, type RowColumn } from '../projection'

/** Name of the audit timeline projection (its checkpoint and dead-letter key). */
export const AUDIT_TIMELINE_PROJECTION = 'audit_timeline'

type AuditTimelineTable = 'audit_timeline'

/** The decision and action facts of one event, flattened into audit_timeline's nullable columns. */
interface AuditFacts {
  model?: ModelRef
  prompt?: PromptRef
  route?: string
  toolName?: string
  toolCallId?: string
  idempotencyKey?: string
  sideEffectId?: string | null
  errorCode?: string
  willRetry?: boolean
  inputTokens?: number
  outputTokens?: number
  costUsd?: number
  /** For model calls: whether the provider reported the usage (false: the tokens and cost are an estimate). */
  usageReported?: boolean
  finishReason?: string | null
  structuredOutputPath?: string | null
  latencyMs?: number
  summary: string
}

function modelName(model: ModelRef): string {
  return `${model.modelId}@${model.modelVersion}`
}

function retryNote(willRetry: boolean): string {
  return willRetry ? 'will retry' : 'giving up'
}

function usd(amount: number): string {
  return `$${amount.toFixed(6).replace(/0+$/, '').replace(/\.$/, '.00')}`
}

/** The facts of a tool call or its compensation: which call, its idempotency key and side effect, how long it took. */
function toolFacts(
  call: Required<Pick<AuditFacts, 'toolName' | 'toolCallId' | 'idempotencyKey' | 'latencyMs'>> & Pick<AuditFacts, 'sideEffectId'>,
  errorCode: string | undefined,
  summary: string,
): AuditFacts {
  const { toolName, toolCallId, idempotencyKey, sideEffectId, latencyMs } = call
  return { toolName, toolCallId, idempotencyKey, sideEffectId, errorCode, latencyMs, summary }
}

/** Flattens one event for analysts. The summary names models, routes, tools and codes, never inputs or answers. */
export function auditFacts(event: AnnalistEvent): AuditFacts {
  switch (event.type) {
    case 'AgentTaskReceived':
      return { summary: `task received from ${event.data.requestedBy} (${event.data.input.length} chars, sha256 ${event.data.inputSha256.slice(0, 12)})` }
    case 'RoutingModelInvoked':
    case 'PlanCreated':
    case 'PlanIterationCreated':
    case 'SynthesisModelInvoked': {
      const { model, prompt, usage, latencyMs, finishReason, structuredOutput } = event.data
      const { role } = MODEL_EVENTS[event.type]
      const did =
        event.type === 'RoutingModelInvoked'
          ? `chose route '${event.data.route}'`
          : event.type === 'SynthesisModelInvoked'
            ? `wrote a ${event.data.answer.length}-char answer`
            : `${event.type === 'PlanIterationCreated' ? `iteration ${event.data.iteration}: ` : ''}${plannedCalls(event.data.toolCalls)}${event.type === 'PlanIterationCreated' && event.data.done ? ', done' : ''}`
      return {
        model,
        prompt,
        route: event.type === 'RoutingModelInvoked' ? event.data.route : undefined,
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        costUsd: usage.costUsd,
        usageReported: usage.reported,
        finishReason,
        structuredOutputPath: structuredOutput?.path ?? null,
        latencyMs,
        summary: `${role} model ${modelName(model)} ${did}`,
      }
    }
    case 'RoutingModelFailed':
    case 'PlanningModelFailed':
    case 'SynthesisModelFailed': {
      const { model, prompt, errorCode, willRetry, latencyMs, usage, finishReason } = event.data
      const { role } = MODEL_EVENTS[event.type]
      return {
        model,
        prompt,
        errorCode,
        willRetry,
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        costUsd: usage.costUsd,
        usageReported: usage.reported,
        finishReason,
        latencyMs,
        summary: `${role} model ${modelName(model)} failed with ${errorCode} (attempt ${event.metadata.attempt}, ${retryNote(willRetry)})`,
      }
    }
    case 'ToolCallExecuted':
    case 'ToolCallFailed': {
      const { toolName, toolCallId, sideEffectId } = event.data
      const outcome =
        event.type === 'ToolCallExecuted'
          ? `succeeded${sideEffectId ? ` with side effect ${sideEffectId}` : ''}`
          : `failed with ${event.data.errorCode}`
      return toolFacts(event.data, event.type === 'ToolCallFailed' ? event.data.errorCode : undefined, `tool ${toolName} (call ${toolCallId}) ${outcome}`)
    }
    case 'AgentTaskCompleted': {
      const { toolCallsSucceeded, toolCallsFailed, totalTokens, totalCostUsd } = event.data
      return {
        costUsd: totalCostUsd,
        summary: `task completed: ${toolCallsSucceeded} tool call(s) succeeded, ${toolCallsFailed} failed, ${totalTokens} tokens, ${usd(totalCostUsd)}`,
      }
    }
    case 'AgentTaskFailed':
      return { errorCode: event.data.errorCode, summary: `task failed at step ${event.data.failedStep} with ${event.data.errorCode}` }
    case 'AgentTaskCancelled': {
      const { cancelledStep, requestedBy, sideEffectsCompensated, compensationsFailed } = event.data
      const who = requestedBy === null ? 'from outside Annalist (requester unknown)' : `by ${requestedBy}`
      return { summary: `task cancelled ${who} at step ${cancelledStep}: ${sideEffectsCompensated} side effect(s) compensated, ${compensationsFailed} not` }
    }
    case 'ToolCallCompensated':
    case 'ToolCompensationFailed': {
      const { toolName, toolCallId, sideEffectId } = event.data
      const outcome = event.type === 'ToolCallCompensated' ? `compensated by ${event.data.compensationId}` : `could not be compensated: ${event.data.errorCode}`
      return toolFacts(
        event.data,
        event.type === 'ToolCompensationFailed' ? event.data.errorCode : undefined,
        `side effect ${sideEffectId} of tool ${toolName} (call ${toolCallId}) ${outcome}`,
      )
    }
    case 'TaskRunStarted': {
      const { reason, parentRunId, fromStep, requestedBy, checkpoint, overrides } = event.data
      const changed = [
        ...Object.entries(overrides.models).map(([role, model]) => `${role} model ${model}`),
        ...Object.entries(overrides.promptVersions).map(([role, version]) => `${role} prompt v${version}`),
      ]
      return {
        summary:
          `${reason} run started by ${requestedBy} from step ${fromStep} of run ${parentRunId} ` +
          `(signed checkpoint at revision ${checkpoint.revision})${changed.length > 0 ? ` with ${changed.join(', ')}` : ''}`,
      }
    }
    case 'RedriveRequested':
      return {
        summary: `redrive ${event.data.resumed ? 'requested again (resumed)' : 'requested'} by ${event.data.requestedBy} for dead-lettered run ${event.data.deadLetteredRunId}`,
      }
    case 'TaskRunContinued':
      return {
        summary: `continued as a new Temporal run after ${event.data.iterationsDone} iteration(s) and ${event.data.toolCallsDone} tool call(s) (history ${event.data.historyLength} events)`,
      }
    case 'TaskDeadLettered':
      return {
        errorCode: event.data.errorCode,
        summary: `task dead-lettered: step ${event.data.failedStep} exhausted ${event.data.attempts} attempt(s) with ${event.data.errorCode}; awaiting redrive`,
      }
    case 'StreamLifecycleDecided':
      // The runner hands lifecycle decisions to projections/lifecycleFollower.ts, never to apply; the audit trail of
      // decisions is the compliance stream itself (`annalist lifecycle list`).
      return { summary: `lifecycle decision ${event.data.decision.kind} by ${event.data.decidedBy}` }
  }
}

function plannedCalls(calls: readonly { toolName: string }[]): string {
  return `planned ${calls.length} tool call(s)${calls.length > 0 ? `: ${calls.map((call) => call.toolName).join(', ')}` : ''}`
}

const AUDIT_COLUMNS: readonly RowColumn[] = [
  ['position', 'bigint'],
  ['tenant_sequence', 'bigint'],
  ['tenant_id', 'text'],
  ['task_id', 'text'],
  ['stream_revision', 'bigint'],
  ['event_id', 'text'],
  ['event_type', 'text'],
  ['occurred_at', 'timestamptz'],
  ['recorded_at', 'timestamptz'],
  ['workflow_id', 'text'],
  ['run_id', 'text'],
  ['activity_id', 'text'],
  ['attempt', 'integer'],
  ['correlation_id', 'text'],
  ['causation_id', 'text'],
  ['classification', 'text'],
  ['model_provider', 'text'],
  ['model_id', 'text'],
  ['model_version', 'text'],
  ['prompt_template_id', 'text'],
  ['prompt_template_version', 'text'],
  ['prompt_ref', 'text'],
  ['prompt_sha256', 'text'],
  ['route', 'text'],
  ['tool_name', 'text'],
  ['tool_call_id', 'text'],
  ['idempotency_key', 'text'],
  ['side_effect_id', 'text'],
  ['error_code', 'text'],
  ['will_retry', 'boolean'],
  ['input_tokens', 'integer'],
  ['output_tokens', 'integer'],
  ['cost_usd', 'numeric'],
  ['latency_ms', 'numeric'],
  ['summary', 'text'],
  ['usage_reported', 'boolean'],
  ['finish_reason', 'text'],
  ['structured_output_path', 'text'],
].map(([name, type]) => ({ name: name!, type: type! }))

/** The audit_timeline row of one event, in AUDIT_COLUMNS order, given its tenant sequence. */
function auditRow(stored: StoredEvent, tenantSequence: bigint): unknown[] {
  const { event } = stored
  const { metadata } = event
  const facts = auditFacts(event)
  return [
    stored.position.toString(),
    tenantSequence.toString(),
    metadata.tenantId,
    metadata.taskId,
    stored.revision.toString(),
    stored.eventId,
    event.type,
    metadata.occurredAt,
    stored.recordedAt,
    metadata.workflowId,
    metadata.runId,
    metadata.activityId,
    metadata.attempt,
    metadata.correlationId,
    metadata.causationId,
    metadata.classification,
    facts.model?.provider ?? null,
    facts.model?.modelId ?? null,
    facts.model?.modelVersion ?? null,
    facts.prompt?.templateId ?? null,
    facts.prompt?.templateVersion ?? null,
    facts.prompt?.ref ?? null,
    facts.prompt?.sha256 ?? null,
    facts.route ?? null,
    facts.toolName ?? null,
    facts.toolCallId ?? null,
    facts.idempotencyKey ?? null,
    facts.sideEffectId ?? null,
    facts.errorCode ?? null,
    facts.willRetry ?? null,
    facts.inputTokens ?? null,
    facts.outputTokens ?? null,
    facts.costUsd === undefined ? null : String(facts.costUsd),
    facts.latencyMs === undefined ? null : String(facts.latencyMs),
    facts.summary,
    facts.usageReported ?? null,
    facts.finishReason ?? null,
    facts.structuredOutputPath ?? null,
  ]
}

/**
 * The tenant sequence of each of `events` (in log order), as audit_timeline stores it: the one the store assigned at
 * append (PostgreSQL, memory). Where the store assigned none (EventStoreDB, whose RecordedEvent.tenantSequence is always
 * null; or an event written around annalist_append), the event keeps the sequence its row already has, or else gets
 * the tenant's highest sequence so far + 1, counting this batch's earlier events. The runner applies events in commit
 * order, one projection at a time, so that numbering is dense and in the same order PostgreSQL's is (docs/ordering.md).
 */
async function tenantSequencesOf(client: pg.PoolClient, table: string, events: readonly StoredEvent[]): Promise<bigint[]> {
  const unnumbered = events.filter((stored) => stored.tenantSequence === null)
  if (unnumbered.length === 0) return events.map((stored) => stored.tenantSequence!)
  const tenants = [...new Set(unnumbered.map((stored) => stored.event.metadata.tenantId))]
  const { rows: highest } = await client.query<{ tenant_id: string; highest: string | null }>(
    `select tenant_id, max(tenant_sequence)::text as highest from ${table} where tenant_id = any($1::text[]) group by tenant_id`,
    [tenants],
  )
  const { rows: existing } = await client.query<{ position: string; tenant_sequence: string }>(
    `select position::text, tenant_sequence::text from ${table} where position = any($1::bigint[])`,
    [unnumbered.map((stored) => stored.position.toString())],
  )
  const last = new Map(highest.map((row) => [row.tenant_id, BigInt(row.highest ?? 0)]))
  const already = new Map(existing.map((row) => [row.position, BigInt(row.tenant_sequence)]))
  return events.map((stored) => {
    const tenant = stored.event.metadata.tenantId
    const sequence = stored.tenantSequence ?? already.get(stored.position.toString()) ?? (last.get(tenant) ?? 0n) + 1n
    if (sequence > (last.get(tenant) ?? 0n)) last.set(tenant, sequence)
    return sequence
  })
}

/**
 * Per-tenant audit timeline: one row per event, keyed by global position, so applying an event twice inserts nothing.
 * Each row also carries the event's tenant sequence (tenantSequencesOf), the only order tenants see.
 * A batch is one multi-row insert; `apply` is the batch of one event.
 */
export function auditTimelineProjection(): Projection<AuditTimelineTable> {
  const applyBatch = async (client: pg.PoolClient, events: readonly StoredEvent[], tables: ProjectionTables<AuditTimelineTable>): Promise<void> => {
    const sequences = await tenantSequencesOf(client, tables.audit_timeline, events)
    const rows = events.map((stored, index) => auditRow(stored, sequences[index]!))
    await insertRows(client, tables.audit_timeline, AUDIT_COLUMNS, rows, 'on conflict (position) do nothing')
  }
  return {
    name: AUDIT_TIMELINE_PROJECTION,
    forgetTask: forgetTaskRows(),
    tables: ['audit_timeline'],
    applyBatch,
    apply: (client, stored, tables) => applyBatch(client, [stored], tables),
  }
}
