import type pg from 'pg'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import type { ModelUse, TaskStatus } from './projection'

/** Where one task stands, as the task summary read model has it. */
export interface TaskSummary {
  readonly tenantId: string
  readonly taskId: string
  readonly status: TaskStatus
  readonly currentStep: string
  readonly failedStep: string | null
  readonly errorCode: string | null
  readonly route: string | null
  readonly toolCallsSucceeded: number
  readonly toolCallsFailed: number
  readonly modelAttemptsFailed: number
  readonly modelsUsed: readonly ModelUse[]
  readonly totalTokens: number
  readonly totalCostUsd: number
  readonly eventsApplied: number
  readonly startedAt: Date | null
  readonly finishedAt: Date | null
  /** Position of the task's first event in the global log. */
  readonly firstPosition: bigint
  readonly lastPosition: bigint
}

/** One tenant's tasks in aggregate, for the per-tenant audit summary. */
export interface TenantSummary {
  readonly tenantId: string
  readonly tasks: number
  readonly byStatus: Readonly<Record<TaskStatus, number>>
  readonly toolCallsSucceeded: number
  readonly toolCallsFailed: number
  readonly modelAttemptsFailed: number
  readonly totalTokens: number
  readonly totalCostUsd: number
  readonly eventsApplied: number
}

interface SummaryRow {
  tenant_id: string
  task_id: string
  status: TaskStatus
  current_step: string
  failed_step: string | null
  error_code: string | null
  route: string | null
  tool_calls_succeeded: number
  tool_calls_failed: number
  model_attempts_failed: number
  models_used: ModelUse[]
  total_tokens: string
  total_cost_usd: string
  events_applied: number
  started_at: Date | null
  finished_at: Date | null
  first_position: string
  last_position: string
}

/** A tenant's task summaries (or one task's) in the order they entered the log. The tenant ID is validated before any query. */
export async function taskSummaries(pool: pg.Pool, query: { readonly tenantId: string; readonly taskId?: string }): Promise<TaskSummary[]> {
  const tenantId = assertTenantId(query.tenantId)
  const taskId = query.taskId === undefined ? null : assertTaskId(query.taskId)
  const result = await pool.query<SummaryRow>(
    `select * from task_summary
      where tenant_id = $1 and ($2::text is null or task_id = $2::text)
      order by first_position`,
    [tenantId, taskId],
  )
  return result.rows.map((row) => ({
    tenantId: row.tenant_id,
    taskId: row.task_id,
    status: row.status,
    currentStep: row.current_step,
    failedStep: row.failed_step,
    errorCode: row.error_code,
    route: row.route,
    toolCallsSucceeded: row.tool_calls_succeeded,
    toolCallsFailed: row.tool_calls_failed,
    modelAttemptsFailed: row.model_attempts_failed,
    modelsUsed: row.models_used,
    totalTokens: Number(row.total_tokens),
    totalCostUsd: Number(row.total_cost_usd),
    eventsApplied: row.events_applied,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    firstPosition: BigInt(row.first_position),
    lastPosition: BigInt(row.last_position),
  }))
}

interface TenantRow {
  tasks: string
  received: string
  running: string
  completed: string
  failed: string
  tool_calls_succeeded: string
  tool_calls_failed: string
  model_attempts_failed: string
  total_tokens: string
  total_cost_usd: string
  events_applied: string
}

/** Counts a tenant's tasks (all, or only `taskIds`) by status and totals their tool calls, failed model attempts, tokens and cost. */
export async function tenantSummary(pool: pg.Pool, tenantId: string, options: { readonly taskIds?: readonly string[] } = {}): Promise<TenantSummary> {
  const tenant = assertTenantId(tenantId)
  const taskIds = options.taskIds?.map(assertTaskId) ?? null
  const result = await pool.query<TenantRow>(
    `select count(*) as tasks,
            count(*) filter (where status = 'received') as received,
            count(*) filter (where status = 'running') as running,
            count(*) filter (where status = 'completed') as completed,
            count(*) filter (where status = 'failed') as failed,
            coalesce(sum(tool_calls_succeeded), 0) as tool_calls_succeeded,
            coalesce(sum(tool_calls_failed), 0) as tool_calls_failed,
            coalesce(sum(model_attempts_failed), 0) as model_attempts_failed,
            coalesce(sum(total_tokens), 0) as total_tokens,
            coalesce(sum(total_cost_usd), 0) as total_cost_usd,
            coalesce(sum(events_applied), 0) as events_applied
       from task_summary
      where tenant_id = $1 and ($2::text[] is null or task_id = any($2::text[]))`,
    [tenant, taskIds],
  )
  const row = result.rows[0]!
  return {
    tenantId: tenant,
    tasks: Number(row.tasks),
    byStatus: { received: Number(row.received), running: Number(row.running), completed: Number(row.completed), failed: Number(row.failed) },
    toolCallsSucceeded: Number(row.tool_calls_succeeded),
    toolCallsFailed: Number(row.tool_calls_failed),
    modelAttemptsFailed: Number(row.model_attempts_failed),
    totalTokens: Number(row.total_tokens),
    totalCostUsd: Number(row.total_cost_usd),
    eventsApplied: Number(row.events_applied),
  }
}
