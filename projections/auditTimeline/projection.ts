import type pg from 'pg'
import type { AnnalistEvent, ModelRef, PromptRef } from '../../historian/events'
import type { StoredEvent } from '../../historian/historian'
import type { Projection, ProjectionTables } from '../projection'

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

/** Flattens one event for analysts. The summary names models, routes, tools and codes, never inputs or answers. */
export function auditFacts(event: AnnalistEvent): AuditFacts {
  switch (event.type) {
    case 'AgentTaskReceived':
      return { summary: `task received from ${event.data.requestedBy} (${event.data.input.length} chars, sha256 ${event.data.inputSha256.slice(0, 12)})` }
    case 'RoutingModelInvoked':
    case 'PlanCreated':
    case 'SynthesisModelInvoked': {
      const { model, prompt, usage, latencyMs } = event.data
      const role = event.type === 'RoutingModelInvoked' ? 'routing' : event.type === 'PlanCreated' ? 'planning' : 'synthesis'
      const did =
        event.type === 'RoutingModelInvoked'
          ? `chose route '${event.data.route}'`
          : event.type === 'PlanCreated'
            ? `planned ${event.data.toolCalls.length} tool call(s)${event.data.toolCalls.length > 0 ? `: ${event.data.toolCalls.map((call) => call.toolName).join(', ')}` : ''}`
            : `wrote a ${event.data.answer.length}-char answer`
      return {
        model,
        prompt,
        route: event.type === 'RoutingModelInvoked' ? event.data.route : undefined,
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        costUsd: usage.costUsd,
        latencyMs,
        summary: `${role} model ${modelName(model)} ${did}`,
      }
    }
    case 'RoutingModelFailed':
    case 'PlanningModelFailed':
    case 'SynthesisModelFailed': {
      const { model, prompt, errorCode, willRetry, latencyMs } = event.data
      const role = event.type === 'RoutingModelFailed' ? 'routing' : event.type === 'PlanningModelFailed' ? 'planning' : 'synthesis'
      return {
        model,
        prompt,
        errorCode,
        willRetry,
        latencyMs,
        summary: `${role} model ${modelName(model)} failed with ${errorCode} (attempt ${event.metadata.attempt}, ${retryNote(willRetry)})`,
      }
    }
    case 'ToolCallExecuted':
    case 'ToolCallFailed': {
      const { toolName, toolCallId, idempotencyKey, sideEffectId, latencyMs } = event.data
      const outcome =
        event.type === 'ToolCallExecuted'
          ? `succeeded${sideEffectId ? ` with side effect ${sideEffectId}` : ''}`
          : `failed with ${event.data.errorCode}`
      return {
        toolName,
        toolCallId,
        idempotencyKey,
        sideEffectId,
        errorCode: event.type === 'ToolCallFailed' ? event.data.errorCode : undefined,
        latencyMs,
        summary: `tool ${toolName} (call ${toolCallId}) ${outcome}`,
      }
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
  }
}

/** Per-tenant audit timeline: one row per event, keyed by global position, so applying an event twice inserts nothing. */
export function auditTimelineProjection(): Projection<AuditTimelineTable> {
  return {
    name: AUDIT_TIMELINE_PROJECTION,
    tables: ['audit_timeline'],
    async apply(client: pg.PoolClient, stored: StoredEvent, tables: ProjectionTables<AuditTimelineTable>): Promise<void> {
      const { event } = stored
      const { metadata } = event
      const facts = auditFacts(event)
      await client.query(
        `insert into ${tables.audit_timeline} (
           position, tenant_id, task_id, stream_revision, event_id, event_type, occurred_at, recorded_at,
           workflow_id, run_id, activity_id, attempt, correlation_id, causation_id, classification,
           model_provider, model_id, model_version, prompt_template_id, prompt_template_version, prompt_ref, prompt_sha256,
           route, tool_name, tool_call_id, idempotency_key, side_effect_id, error_code, will_retry,
           input_tokens, output_tokens, cost_usd, latency_ms, summary
         ) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
                   $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34)
         on conflict (position) do nothing`,
        [
          stored.position.toString(),
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
        ],
      )
    },
  }
}
