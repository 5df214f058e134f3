import type pg from 'pg'
import { PIPELINE_STEPS, REPLAYABLE_STEPS } from '../../historian/events/catalogue'
import { assertTenantId } from '../../historian/streams'
import { filterValue, InvalidQueryError, timeWindow, type TimeWindow } from '../queryFilters'
import { StepFailureKind } from './projection'

/** The pipeline steps failures are reported for: the steps that do work, the ones a new run can start from. */
export const FAILURE_STEPS = REPLAYABLE_STEPS
export type FailureStep = (typeof FAILURE_STEPS)[number]

/**
 * Which failures count: `task` = a task gave up at the step (AgentTaskFailed.failedStep); `attempt` = a model attempt
 * at the step failed, or (at `tools`) a tool call failed, whether or not the task recovered; `any` = either.
 */
export const FailureKind = { task: 'task', attempt: 'attempt', any: 'any' } as const
export type FailureKind = (typeof FailureKind)[keyof typeof FailureKind]

/** A time window over event occurrence times, [from, to); ISO 8601 strings with a zone, or Dates. */
export interface AnalyticsWindow {
  readonly from?: string | Date
  readonly to?: string | Date
}

export interface FailuresByStepFilters extends AnalyticsWindow {
  readonly step?: FailureStep
  readonly errorCode?: string
  readonly tenantId?: string
  /** Default `any`. */
  readonly kind?: FailureKind
}

/** Failures of one tenant at one step with one error code in the window. */
export interface StepFailureCount {
  readonly tenantId: string
  /** A pipeline step; `receive` and `complete` appear only for tasks that gave up there. */
  readonly step: string
  readonly errorCode: string
  /** attemptFailures + taskFailures. */
  readonly failures: number
  /** Failed model attempts and failed tool calls. */
  readonly attemptFailures: number
  /** Tasks that gave up at this step with this code. */
  readonly taskFailures: number
  /** Distinct tasks with at least one of these failures. */
  readonly tasks: number
  readonly lastFailedAt: Date
}

export interface TenantsWithFailuresFilters extends AnalyticsWindow {
  readonly step: FailureStep
  /** Default `any`. */
  readonly kind?: FailureKind
}

/** One tenant's failures at the asked-for step in the window. */
export interface TenantFailures {
  readonly tenantId: string
  readonly failures: number
  readonly tasks: number
  readonly lastFailedAt: Date
}

export interface TenantWindowFilters extends AnalyticsWindow {
  readonly tenantId?: string
}

/** Calls of one model version in the window: successes and failures. */
export interface ModelInvocationStats {
  readonly provider: string
  readonly modelId: string
  readonly modelVersion: string
  readonly invocations: number
  /** Failed calls. */
  readonly failures: number
  /** Continuous percentiles (percentile_cont) over every call's latency, failed calls included. */
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  /** Tokens and cost the provider reported, over every call, successful or failed. */
  readonly inputTokens: number
  readonly outputTokens: number
  readonly costUsd: number
  /** The part of `costUsd` spent on failed calls. */
  readonly failedCallCostUsd: number
  /** Calls whose usage the provider did not report (timeouts, aborts, servers without usage). */
  readonly callsWithoutReportedUsage: number
  /** Their estimate (prompt tokens, priced): NOT part of the figures above. */
  readonly estimatedUnreportedTokens: number
  readonly estimatedUnreportedCostUsd: number
}

/** What one tenant's model calls cost on one UTC day. */
export interface TenantDayCost {
  readonly tenantId: string
  /** The UTC day, YYYY-MM-DD. */
  readonly day: string
  /** The cost the provider reported, over every call, successful or failed. */
  readonly costUsd: number
  /** The part of `costUsd` spent on failed calls. */
  readonly failedCallCostUsd: number
  /** The estimated cost of calls whose usage was not reported: NOT part of `costUsd`. */
  readonly estimatedUnreportedCostUsd: number
  /** Reported input plus output tokens. */
  readonly tokens: number
  /** Distinct tasks that called a model that day. */
  readonly tasks: number
}

/** Calls of one tool in the window. */
export interface ToolUsage {
  readonly toolName: string
  readonly calls: number
  readonly failures: number
  /** failures / calls, from 0 to 1. */
  readonly failureRate: number
  readonly latencyP50Ms: number
}

/** Default window of failure queries ("in the last 24 hours") and of the others, in days. */
const FAILURE_WINDOW_DAYS = 1
const DEFAULT_WINDOW_DAYS = 30
const STEP_ORDER = `array_position(array[${PIPELINE_STEPS.map((step) => `'${step}'`).join(', ')}], step)`

/** A WHERE clause built from constant SQL fragments, with every value as a parameter. */
class Conditions {
  readonly params: unknown[] = []
  private readonly clauses: string[] = []

  /** Adds `fragment`, in which `?` stands for the parameter holding `value`. */
  add(fragment: string, value: unknown): this {
    this.params.push(value)
    this.clauses.push(fragment.replace('?', `$${this.params.length}`))
    return this
  }

  get sql(): string {
    return this.clauses.join(' and ')
  }
}

function windowConditions(window: TimeWindow): Conditions {
  return new Conditions().add('occurred_at >= ?', window.from).add('occurred_at < ?', window.to)
}

/** Checks a step filter: one of FAILURE_STEPS, else InvalidQueryError. */
export function failureStep(value: unknown): FailureStep {
  const step = FAILURE_STEPS.find((candidate) => candidate === value)
  if (step === undefined) throw new InvalidQueryError('step', `${JSON.stringify(value)} is not one of ${FAILURE_STEPS.join(', ')}`)
  return step
}

/** Checks a kind filter: one of FailureKind (default `any`), else InvalidQueryError. */
export function failureKind(value: unknown = FailureKind.any): FailureKind {
  const kind = Object.values(FailureKind).find((candidate) => candidate === value)
  if (kind === undefined) throw new InvalidQueryError('kind', `${JSON.stringify(value)} is not one of ${Object.values(FailureKind).join(', ')}`)
  return kind
}

/** The stored step-failure kinds a FailureKind filter selects. */
function failureKinds(value: unknown): StepFailureKind[] {
  switch (failureKind(value)) {
    case FailureKind.task:
      return [StepFailureKind.task]
    case FailureKind.attempt:
      return [StepFailureKind.modelAttempt, StepFailureKind.toolCall]
    case FailureKind.any:
      return Object.values(StepFailureKind)
  }
}

const count = (value: string | number): number => Number(value)

/** Reported usage over every call in a group, successful or failed, and the failed calls' part of its cost. */
const REPORTED_USAGE = `coalesce(sum(input_tokens) filter (where usage_reported), 0) as input_tokens,
            coalesce(sum(output_tokens) filter (where usage_reported), 0) as output_tokens,
            coalesce(sum(cost_usd) filter (where usage_reported), 0) as cost_usd,
            coalesce(sum(cost_usd) filter (where usage_reported and outcome = 'failed'), 0) as failed_call_cost_usd`
/** The estimated cost of the calls in a group whose usage was not reported. */
const ESTIMATED_COST = `coalesce(sum(cost_usd) filter (where not usage_reported), 0) as estimated_unreported_cost_usd`

/**
 * Failures by tenant, step and error code in the window (default: the last 24 hours), in step order. Counts failed
 * model attempts and tool calls (`attemptFailures`) and tasks that gave up at the step (`taskFailures`); a task that
 * gives up after a failed final attempt shows in both, so `tasks` counts distinct tasks. `kind` narrows to one of them.
 */
export async function failuresByStep(pool: pg.Pool, filters: FailuresByStepFilters, now: Date = new Date()): Promise<StepFailureCount[]> {
  const window = timeWindow(filters, now, FAILURE_WINDOW_DAYS)
  const where = windowConditions(window).add('kind = any(?::text[])', failureKinds(filters.kind))
  if (filters.step !== undefined) where.add('step = ?', failureStep(filters.step))
  if (filters.errorCode !== undefined) where.add('error_code = ?', filterValue('errorCode', filters.errorCode))
  if (filters.tenantId !== undefined) where.add('tenant_id = ?', assertTenantId(filters.tenantId))
  const result = await pool.query<{
    tenant_id: string
    step: string
    error_code: string
    attempt_failures: string
    task_failures: string
    tasks: string
    last_failed_at: Date
  }>(
    `select tenant_id, step, error_code,
            count(*) filter (where kind <> 'task') as attempt_failures,
            count(*) filter (where kind = 'task') as task_failures,
            count(distinct task_id) as tasks,
            max(occurred_at) as last_failed_at
       from analytics_step_failures
      where ${where.sql}
      group by tenant_id, step, error_code
      order by tenant_id, ${STEP_ORDER}, error_code`,
    where.params,
  )
  return result.rows.map((row) => ({
    tenantId: row.tenant_id,
    step: row.step,
    errorCode: row.error_code,
    failures: count(row.attempt_failures) + count(row.task_failures),
    attemptFailures: count(row.attempt_failures),
    taskFailures: count(row.task_failures),
    tasks: count(row.tasks),
    lastFailedAt: row.last_failed_at,
  }))
}

/**
 * "Which tenants had synthesis failures in the last 24 hours": the tenants with failures at `step` in the window
 * (default: the last 24 hours), by tenant ID. What counts is `kind` (default `any`): a task that failed at the step,
 * OR any attempt at the step that failed, even one a retry then recovered from (see FailureKind).
 */
export async function tenantsWithFailures(pool: pg.Pool, filters: TenantsWithFailuresFilters, now: Date = new Date()): Promise<TenantFailures[]> {
  const window = timeWindow(filters, now, FAILURE_WINDOW_DAYS)
  const where = windowConditions(window)
    .add('step = ?', failureStep(filters.step))
    .add('kind = any(?::text[])', failureKinds(filters.kind))
  const result = await pool.query<{ tenant_id: string; failures: string; tasks: string; last_failed_at: Date }>(
    `select tenant_id, count(*) as failures, count(distinct task_id) as tasks, max(occurred_at) as last_failed_at
       from analytics_step_failures
      where ${where.sql}
      group by tenant_id
      order by tenant_id`,
    where.params,
  )
  return result.rows.map((row) => ({ tenantId: row.tenant_id, failures: count(row.failures), tasks: count(row.tasks), lastFailedAt: row.last_failed_at }))
}

function tenantWindow(filters: TenantWindowFilters, now: Date): Conditions {
  const where = windowConditions(timeWindow(filters, now, DEFAULT_WINDOW_DAYS))
  if (filters.tenantId !== undefined) where.add('tenant_id = ?', assertTenantId(filters.tenantId))
  return where
}

/**
 * Model calls per provider, model and version in the window (default: the last 30 days), optionally of one tenant.
 * Tokens and cost are what the provider reported, failed calls included; calls without reported usage are counted
 * and their estimate given apart.
 */
export async function modelInvocationStats(pool: pg.Pool, filters: TenantWindowFilters, now: Date = new Date()): Promise<ModelInvocationStats[]> {
  const where = tenantWindow(filters, now)
  const result = await pool.query<{
    provider: string
    model_id: string
    model_version: string
    invocations: string
    failures: string
    latency_p50_ms: number | string
    latency_p99_ms: number | string
    input_tokens: string
    output_tokens: string
    cost_usd: string
    failed_call_cost_usd: string
    calls_without_reported_usage: string
    estimated_unreported_tokens: string
    estimated_unreported_cost_usd: string
  }>(
    `select provider, model_id, model_version,
            count(*) as invocations,
            count(*) filter (where outcome = 'failed') as failures,
            percentile_cont(0.5) within group (order by latency_ms) as latency_p50_ms,
            percentile_cont(0.99) within group (order by latency_ms) as latency_p99_ms,
            ${REPORTED_USAGE},
            count(*) filter (where not usage_reported) as calls_without_reported_usage,
            coalesce(sum(input_tokens + output_tokens) filter (where not usage_reported), 0) as estimated_unreported_tokens,
            ${ESTIMATED_COST}
       from analytics_model_invocations
      where ${where.sql}
      group by provider, model_id, model_version
      order by provider, model_id, model_version`,
    where.params,
  )
  return result.rows.map((row) => ({
    provider: row.provider,
    modelId: row.model_id,
    modelVersion: row.model_version,
    invocations: count(row.invocations),
    failures: count(row.failures),
    latencyP50Ms: Number(row.latency_p50_ms),
    latencyP99Ms: Number(row.latency_p99_ms),
    inputTokens: count(row.input_tokens),
    outputTokens: count(row.output_tokens),
    costUsd: Number(row.cost_usd),
    failedCallCostUsd: Number(row.failed_call_cost_usd),
    callsWithoutReportedUsage: count(row.calls_without_reported_usage),
    estimatedUnreportedTokens: count(row.estimated_unreported_tokens),
    estimatedUnreportedCostUsd: Number(row.estimated_unreported_cost_usd),
  }))
}

/**
 * Model cost and tokens per tenant per UTC day in the window (default: the last 30 days), by tenant, then day: the
 * reported cost of every call with its failed calls' part, and apart from it the estimated cost of calls whose usage
 * was not reported.
 */
export async function costPerTenantPerDay(pool: pg.Pool, filters: TenantWindowFilters, now: Date = new Date()): Promise<TenantDayCost[]> {
  const where = tenantWindow(filters, now)
  const result = await pool.query<{
    tenant_id: string
    day: string
    cost_usd: string
    failed_call_cost_usd: string
    estimated_unreported_cost_usd: string
    input_tokens: string
    output_tokens: string
    tasks: string
  }>(
    `select tenant_id, to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD') as day,
            ${REPORTED_USAGE},
            ${ESTIMATED_COST},
            count(distinct task_id) as tasks
       from analytics_model_invocations
      where ${where.sql}
      group by 1, 2
      order by 1, 2`,
    where.params,
  )
  return result.rows.map((row) => ({
    tenantId: row.tenant_id,
    day: row.day,
    costUsd: Number(row.cost_usd),
    failedCallCostUsd: Number(row.failed_call_cost_usd),
    estimatedUnreportedCostUsd: Number(row.estimated_unreported_cost_usd),
    tokens: count(row.input_tokens) + count(row.output_tokens),
    tasks: count(row.tasks),
  }))
}

/** Calls, failures and median latency per tool in the window (default: the last 30 days), optionally of one tenant. */
export async function toolUsage(pool: pg.Pool, filters: TenantWindowFilters, now: Date = new Date()): Promise<ToolUsage[]> {
  const where = tenantWindow(filters, now)
  const result = await pool.query<{ tool_name: string; calls: string; failures: string; latency_p50_ms: number | string }>(
    `select tool_name,
            count(*) as calls,
            count(*) filter (where outcome = 'failed') as failures,
            percentile_cont(0.5) within group (order by latency_ms) as latency_p50_ms
       from analytics_tool_calls
      where ${where.sql}
      group by tool_name
      order by tool_name`,
    where.params,
  )
  return result.rows.map((row) => {
    const calls = count(row.calls)
    const failures = count(row.failures)
    return { toolName: row.tool_name, calls, failures, failureRate: failures / calls, latencyP50Ms: Number(row.latency_p50_ms) }
  })
}
