import type pg from 'pg'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import { InvalidQueryError, pageLimit } from '../queryFilters'
import { tenantTaskRows } from '../tenantTaskRows'
import { TaskStatus, type ModelUse } from './projection'

/** The most task summaries one query returns. */
export const TASK_SUMMARIES_MAX_LIMIT = 10_000
/** How many task summaries a query returns when it names no limit. */
export const TASK_SUMMARIES_DEFAULT_LIMIT = 1_000

/** Filters of `taskSummaries`: one tenant, optionally one task and one status, at most `limit` rows. */
export interface TaskSummaryQuery {
  readonly tenantId: string
  readonly taskId?: string
  readonly status?: TaskStatus
  /** 1 to TASK_SUMMARIES_MAX_LIMIT; default TASK_SUMMARIES_DEFAULT_LIMIT. */
  readonly limit?: number
}

/** What a task's calls came to: counted per task, and summed over a tenant's tasks. */
export interface TaskTotals {
  readonly toolCallsSucceeded: number
  readonly toolCallsFailed: number
  readonly modelAttemptsFailed: number
  /**
   * Activity attempts recorded for the task: for each of its activities, the highest Temporal attempt number any of
   * its events carries, summed. A first try that succeeds counts 1; a retry after a failure or a crash counts again.
   */
  readonly attempts: number
  /** Tokens and cost the provider reported, over every model call of the task, successful or failed. */
  readonly totalTokens: number
  readonly totalCostUsd: number
  /** The part of `totalCostUsd` spent on failed calls (a malformed or truncated reply was generated and billed). */
  readonly failedCallCostUsd: number
  /** Model calls whose usage the provider did not report (a timeout, an abort, a server without usage). */
  readonly callsWithoutReportedUsage: number
  /** Those calls' estimate (prompt tokens, priced): flagged as an estimate and NOT part of the totals. */
  readonly estimatedUnreportedTokens: number
  readonly estimatedUnreportedCostUsd: number
  readonly eventsApplied: number
}

/** Where one task stands, as the task summary read model has it. */
export interface TaskSummary extends TaskTotals {
  readonly tenantId: string
  readonly taskId: string
  readonly status: TaskStatus
  readonly currentStep: string
  readonly failedStep: string | null
  readonly errorCode: string | null
  readonly route: string | null
  readonly modelsUsed: readonly ModelUse[]
  readonly startedAt: Date | null
  readonly finishedAt: Date | null
  /** Position of the task's first event in the global log. */
  readonly firstPosition: bigint
  readonly lastPosition: bigint
}

/** One tenant's tasks in aggregate, for the per-tenant audit summary: each of the totals is the sum over the tasks. */
export interface TenantSummary extends TaskTotals {
  readonly tenantId: string
  readonly tasks: number
  readonly byStatus: Readonly<Record<TaskStatus, number>>
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
  attempts: number
  models_used: ModelUse[]
  total_tokens: string
  total_cost_usd: string
  failed_call_cost_usd: string
  calls_without_reported_usage: number
  estimated_unreported_tokens: string
  estimated_unreported_cost_usd: string
  events_applied: number
  started_at: Date | null
  finished_at: Date | null
  first_position: string
  last_position: string
}

/** Checks a task status filter; throws InvalidQueryError naming the statuses there are. */
export function taskStatusFilter(value: string): TaskStatus {
  if (!Object.hasOwn(TaskStatus, value)) {
    throw new InvalidQueryError('status', `${JSON.stringify(value.slice(0, 64))} is not a task status; use one of ${Object.values(TaskStatus).join(', ')}`)
  }
  return value as TaskStatus
}

/** A TaskSummaryQuery after validation, ready to bind as parameters. */
export interface ValidTaskSummaryQuery {
  readonly tenantId: string
  readonly taskId: string | null
  readonly status: TaskStatus | null
  readonly limit: number
}

/**
 * Validates a TaskSummaryQuery without touching the database: tenant and task IDs (InvalidIdentifierError), status
 * and limit (InvalidQueryError). Commands call it before they open storage.
 */
export function validateTaskSummaryQuery(query: TaskSummaryQuery): ValidTaskSummaryQuery {
  return {
    tenantId: assertTenantId(query.tenantId),
    taskId: query.taskId === undefined ? null : assertTaskId(query.taskId),
    status: query.status === undefined ? null : taskStatusFilter(query.status),
    limit: pageLimit(query.limit, TASK_SUMMARIES_MAX_LIMIT, TASK_SUMMARIES_DEFAULT_LIMIT),
  }
}

/**
 * A tenant's task summaries (or one task's, or those in one status) in the order they entered the log, at most
 * `limit`. Everything is validated before any query, and every query filters on the tenant.
 */
export async function taskSummaries(pool: pg.Pool, query: TaskSummaryQuery): Promise<TaskSummary[]> {
  const rows = await tenantTaskRows<SummaryRow>(pool, 'task_summary', 'first_position', validateTaskSummaryQuery(query))
  return rows.map((row) => ({
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
    attempts: row.attempts,
    modelsUsed: row.models_used,
    totalTokens: Number(row.total_tokens),
    totalCostUsd: Number(row.total_cost_usd),
    failedCallCostUsd: Number(row.failed_call_cost_usd),
    callsWithoutReportedUsage: row.calls_without_reported_usage,
    estimatedUnreportedTokens: Number(row.estimated_unreported_tokens),
    estimatedUnreportedCostUsd: Number(row.estimated_unreported_cost_usd),
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
  cancelled: string
  tool_calls_succeeded: string
  tool_calls_failed: string
  model_attempts_failed: string
  attempts: string
  total_tokens: string
  total_cost_usd: string
  failed_call_cost_usd: string
  calls_without_reported_usage: string
  estimated_unreported_tokens: string
  estimated_unreported_cost_usd: string
  events_applied: string
}

/**
 * Counts a tenant's tasks (all, only `taskIds`, or only those in `status`) by status and totals their tool calls,
 * failed model attempts, attempts, reported tokens and cost (with the failed calls' part), and the calls without
 * reported usage with their estimate, kept apart from the totals.
 */
export async function tenantSummary(
  pool: pg.Pool,
  tenantId: string,
  options: { readonly taskIds?: readonly string[]; readonly status?: TaskStatus } = {},
): Promise<TenantSummary> {
  const tenant = assertTenantId(tenantId)
  const taskIds = options.taskIds?.map(assertTaskId) ?? null
  const status = options.status === undefined ? null : taskStatusFilter(options.status)
  const result = await pool.query<TenantRow>(
    `select count(*) as tasks,
            count(*) filter (where status = 'received') as received,
            count(*) filter (where status = 'running') as running,
            count(*) filter (where status = 'completed') as completed,
            count(*) filter (where status = 'failed') as failed,
            count(*) filter (where status = 'cancelled') as cancelled,
            coalesce(sum(tool_calls_succeeded), 0) as tool_calls_succeeded,
            coalesce(sum(tool_calls_failed), 0) as tool_calls_failed,
            coalesce(sum(model_attempts_failed), 0) as model_attempts_failed,
            coalesce(sum(attempts), 0) as attempts,
            coalesce(sum(total_tokens), 0) as total_tokens,
            coalesce(sum(total_cost_usd), 0) as total_cost_usd,
            coalesce(sum(failed_call_cost_usd), 0) as failed_call_cost_usd,
            coalesce(sum(calls_without_reported_usage), 0) as calls_without_reported_usage,
            coalesce(sum(estimated_unreported_tokens), 0) as estimated_unreported_tokens,
            coalesce(sum(estimated_unreported_cost_usd), 0) as estimated_unreported_cost_usd,
            coalesce(sum(events_applied), 0) as events_applied
       from task_summary
      where tenant_id = $1 and ($2::text[] is null or task_id = any($2::text[])) and ($3::text is null or status = $3::text)`,
    [tenant, taskIds, status],
  )
  const row = result.rows[0]!
  return {
    tenantId: tenant,
    tasks: Number(row.tasks),
    byStatus: { received: Number(row.received), running: Number(row.running), completed: Number(row.completed), failed: Number(row.failed), cancelled: Number(row.cancelled) },
    toolCallsSucceeded: Number(row.tool_calls_succeeded),
    toolCallsFailed: Number(row.tool_calls_failed),
    modelAttemptsFailed: Number(row.model_attempts_failed),
    attempts: Number(row.attempts),
    totalTokens: Number(row.total_tokens),
    totalCostUsd: Number(row.total_cost_usd),
    failedCallCostUsd: Number(row.failed_call_cost_usd),
    callsWithoutReportedUsage: Number(row.calls_without_reported_usage),
    estimatedUnreportedTokens: Number(row.estimated_unreported_tokens),
    estimatedUnreportedCostUsd: Number(row.estimated_unreported_cost_usd),
    eventsApplied: Number(row.events_applied),
  }
}
