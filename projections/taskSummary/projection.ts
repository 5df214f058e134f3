import type pg from 'pg'
import type { AnnalistEvent, ModelRef, PromptRef } from '../../historian/events'
import type { StoredEvent } from '../../historian/historian'
import type { Projection, ProjectionTables } from '../projection'

/** Name of the task summary projection (its checkpoint and dead-letter key). */
export const TASK_SUMMARY_PROJECTION = 'task_summary'

type TaskSummaryTable = 'task_summary'

/** Where a task stands. */
export const TaskStatus = { received: 'received', running: 'running', completed: 'completed', failed: 'failed' } as const
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus]

/** One distinct model use in a task: which model, in which role, from which prompt template. */
export interface ModelUse {
  readonly role: 'routing' | 'planning' | 'synthesis'
  readonly provider: string
  readonly modelId: string
  readonly modelVersion: string
  readonly templateId: string
  readonly templateVersion: string
}

/** What one event contributes to its task's summary row. */
interface SummaryDelta {
  status: TaskStatus
  step: 'receive' | 'route' | 'plan' | 'tools' | 'synthesize' | 'complete'
  failedStep?: string
  errorCode?: string
  route?: string
  toolCallsSucceeded: number
  toolCallsFailed: number
  modelAttemptsFailed: number
  modelUsed?: ModelUse
  tokens: number
  costUsd: number
  startedAt?: string
  finishedAt?: string
}

function modelUse(role: ModelUse['role'], model: ModelRef, prompt: PromptRef): ModelUse {
  // Fixed key order: jsonb compares objects by content, but a stable shape keeps exports readable.
  return {
    role,
    provider: model.provider,
    modelId: model.modelId,
    modelVersion: model.modelVersion,
    templateId: prompt.templateId,
    templateVersion: prompt.templateVersion,
  }
}

const NONE = { toolCallsSucceeded: 0, toolCallsFailed: 0, modelAttemptsFailed: 0, tokens: 0, costUsd: 0 } as const

/** What one event changes in its task's summary. Failed model attempts count as model uses too: the model was called. */
export function summaryDelta(event: AnnalistEvent): SummaryDelta {
  switch (event.type) {
    case 'AgentTaskReceived':
      return { ...NONE, status: 'received', step: 'receive', startedAt: event.metadata.occurredAt }
    case 'RoutingModelInvoked':
      return {
        ...NONE,
        status: 'running',
        step: 'route',
        route: event.data.route,
        modelUsed: modelUse('routing', event.data.model, event.data.prompt),
        tokens: event.data.usage.inputTokens + event.data.usage.outputTokens,
        costUsd: event.data.usage.costUsd,
      }
    case 'PlanCreated':
    case 'SynthesisModelInvoked':
      return {
        ...NONE,
        status: 'running',
        step: event.type === 'PlanCreated' ? 'plan' : 'synthesize',
        modelUsed: modelUse(event.type === 'PlanCreated' ? 'planning' : 'synthesis', event.data.model, event.data.prompt),
        tokens: event.data.usage.inputTokens + event.data.usage.outputTokens,
        costUsd: event.data.usage.costUsd,
      }
    case 'RoutingModelFailed':
    case 'PlanningModelFailed':
    case 'SynthesisModelFailed': {
      const [step, role] =
        event.type === 'RoutingModelFailed'
          ? (['route', 'routing'] as const)
          : event.type === 'PlanningModelFailed'
            ? (['plan', 'planning'] as const)
            : (['synthesize', 'synthesis'] as const)
      return { ...NONE, status: 'running', step, modelAttemptsFailed: 1, modelUsed: modelUse(role, event.data.model, event.data.prompt) }
    }
    case 'ToolCallExecuted':
      return { ...NONE, status: 'running', step: 'tools', toolCallsSucceeded: 1 }
    case 'ToolCallFailed':
      return { ...NONE, status: 'running', step: 'tools', toolCallsFailed: 1 }
    case 'AgentTaskCompleted':
      return { ...NONE, status: 'completed', step: 'complete', finishedAt: event.metadata.occurredAt }
    case 'AgentTaskFailed':
      return {
        ...NONE,
        status: 'failed',
        step: event.data.failedStep,
        failedStep: event.data.failedStep,
        errorCode: event.data.errorCode,
        finishedAt: event.metadata.occurredAt,
      }
  }
}

/**
 * Per-task summary: one row per (tenant, task), folded from its events in log order. The upsert's guard
 * `last_position < excluded.last_position` makes an event at or below the row's last position change nothing,
 * so applying events twice, or replaying from 0, is harmless. Once a task is completed or failed its status and
 * step stay put.
 */
export function taskSummaryProjection(): Projection<TaskSummaryTable> {
  return {
    name: TASK_SUMMARY_PROJECTION,
    tables: ['task_summary'],
    async apply(client: pg.PoolClient, stored: StoredEvent, tables: ProjectionTables<TaskSummaryTable>): Promise<void> {
      const { event } = stored
      const delta = summaryDelta(event)
      const t = tables.task_summary
      await client.query(
        `insert into ${t} as s (
           tenant_id, task_id, status, current_step, failed_step, error_code, route,
           tool_calls_succeeded, tool_calls_failed, model_attempts_failed, models_used,
           total_tokens, total_cost_usd, events_applied, started_at, finished_at, first_position, last_position
         ) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                   case when $11::jsonb is null then '[]'::jsonb else jsonb_build_array($11::jsonb) end,
                   $12, $13, 1, $14, $15, $16, $16)
         on conflict (tenant_id, task_id) do update set
           status = case when s.status in ('completed', 'failed') then s.status else excluded.status end,
           current_step = case when s.status in ('completed', 'failed') then s.current_step else excluded.current_step end,
           failed_step = coalesce(excluded.failed_step, s.failed_step),
           error_code = coalesce(excluded.error_code, s.error_code),
           route = coalesce(excluded.route, s.route),
           tool_calls_succeeded = s.tool_calls_succeeded + excluded.tool_calls_succeeded,
           tool_calls_failed = s.tool_calls_failed + excluded.tool_calls_failed,
           model_attempts_failed = s.model_attempts_failed + excluded.model_attempts_failed,
           models_used = case
             when $11::jsonb is null or exists (select 1 from jsonb_array_elements(s.models_used) as used(m) where used.m = $11::jsonb)
               then s.models_used
             else s.models_used || jsonb_build_array($11::jsonb)
           end,
           total_tokens = s.total_tokens + excluded.total_tokens,
           total_cost_usd = s.total_cost_usd + excluded.total_cost_usd,
           events_applied = s.events_applied + 1,
           started_at = coalesce(s.started_at, excluded.started_at),
           finished_at = coalesce(excluded.finished_at, s.finished_at),
           last_position = excluded.last_position
         where s.last_position < excluded.last_position`,
        [
          event.metadata.tenantId,
          event.metadata.taskId,
          delta.status,
          delta.step,
          delta.failedStep ?? null,
          delta.errorCode ?? null,
          delta.route ?? null,
          delta.toolCallsSucceeded,
          delta.toolCallsFailed,
          delta.modelAttemptsFailed,
          delta.modelUsed ? JSON.stringify(delta.modelUsed) : null,
          delta.tokens,
          String(delta.costUsd),
          delta.startedAt ?? null,
          delta.finishedAt ?? null,
          stored.position.toString(),
        ],
      )
    },
  }
}
