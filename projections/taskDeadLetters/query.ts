import type pg from 'pg'
import type { FailedAttempt } from '../../historian/events'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import { InvalidQueryError, pageLimit } from '../queryFilters'
import { tenantTaskRows } from '../tenantTaskRows'
import { DeadLetterStatus } from './projection'

/** The most dead letters one query returns. */
export const TASK_DEAD_LETTERS_MAX_LIMIT = 10_000
/** How many dead letters a query returns when it names no limit. */
export const TASK_DEAD_LETTERS_DEFAULT_LIMIT = 1_000

/** A dead-letter status filter: one status, or `all`. */
export type DeadLetterStatusFilter = DeadLetterStatus | 'all'

/** Filters of a dead-letter query: optionally one task and one status (default `all`), at most `limit` rows. */
export interface TaskDeadLetterFilters {
  readonly taskId?: string
  readonly status?: DeadLetterStatusFilter
  /** 1 to TASK_DEAD_LETTERS_MAX_LIMIT; default TASK_DEAD_LETTERS_DEFAULT_LIMIT. */
  readonly limit?: number
}

/** Filters of `taskDeadLetters`: one tenant, plus TaskDeadLetterFilters. */
export interface TaskDeadLetterQuery extends TaskDeadLetterFilters {
  readonly tenantId: string
}

/** One dead-lettered pipeline run, as the task_dead_letters read model has it. */
export interface TaskDeadLetter {
  readonly tenantId: string
  readonly taskId: string
  /** The pipeline run that failed; a redrive names it as its parent run. */
  readonly runId: string
  /** Global position of the TaskDeadLettered event. */
  readonly position: bigint
  readonly eventId: string
  readonly failedStep: string
  readonly errorCode: string
  readonly message: string
  readonly attempts: number
  /** Temporal's retry state of the failed activity. */
  readonly retryState: string
  /** Every recorded failed attempt of the failed step, oldest first. */
  readonly failures: readonly FailedAttempt[]
  readonly deadLetteredAt: Date
  readonly status: DeadLetterStatus
  readonly redrivenBy: string | null
  readonly redrivenAt: Date | null
  /** The run the redrive started. */
  readonly redriveRunId: string | null
  readonly redriveNote: string | null
}

interface DeadLetterRow {
  tenant_id: string
  task_id: string
  run_id: string
  position: string
  event_id: string
  failed_step: string
  error_code: string
  message: string
  attempts: number
  retry_state: string
  failures: FailedAttempt[]
  dead_lettered_at: Date
  status: DeadLetterStatus
  redriven_by: string | null
  redriven_at: Date | null
  redrive_run_id: string | null
  redrive_note: string | null
}

/** Checks a dead-letter status filter; throws InvalidQueryError naming the statuses there are. */
export function deadLetterStatusFilter(value: string): DeadLetterStatusFilter {
  if (value !== 'all' && !Object.hasOwn(DeadLetterStatus, value)) {
    throw new InvalidQueryError('status', `${JSON.stringify(value.slice(0, 64))} is not a dead-letter status; use one of ${[...Object.values(DeadLetterStatus), 'all'].join(', ')}`)
  }
  return value as DeadLetterStatusFilter
}

/** Dead-letter filters after validation, ready to bind as parameters (`null`: no filter). */
export interface ValidTaskDeadLetterFilters {
  readonly taskId: string | null
  readonly status: DeadLetterStatus | null
  readonly limit: number
}

/** Validates dead-letter filters without touching the database: task ID (InvalidIdentifierError), status and limit (InvalidQueryError). */
export function validateTaskDeadLetterFilters(filters: TaskDeadLetterFilters): ValidTaskDeadLetterFilters {
  const status = filters.status === undefined ? 'all' : deadLetterStatusFilter(filters.status)
  return {
    taskId: filters.taskId === undefined ? null : assertTaskId(filters.taskId),
    status: status === 'all' ? null : status,
    limit: pageLimit(filters.limit, TASK_DEAD_LETTERS_MAX_LIMIT, TASK_DEAD_LETTERS_DEFAULT_LIMIT),
  }
}

/** Validates a TaskDeadLetterQuery without touching the database; commands call it before they open storage. */
export function validateTaskDeadLetterQuery(query: TaskDeadLetterQuery): ValidTaskDeadLetterFilters & { readonly tenantId: string } {
  return { tenantId: assertTenantId(query.tenantId), ...validateTaskDeadLetterFilters(query) }
}

function toDeadLetter(row: DeadLetterRow): TaskDeadLetter {
  return {
    tenantId: row.tenant_id,
    taskId: row.task_id,
    runId: row.run_id,
    position: BigInt(row.position),
    eventId: row.event_id,
    failedStep: row.failed_step,
    errorCode: row.error_code,
    message: row.message,
    attempts: row.attempts,
    retryState: row.retry_state,
    failures: row.failures,
    deadLetteredAt: row.dead_lettered_at,
    status: row.status,
    redrivenBy: row.redriven_by,
    redrivenAt: row.redriven_at,
    redriveRunId: row.redrive_run_id,
    redriveNote: row.redrive_note,
  }
}

/**
 * One tenant's dead-lettered runs (optionally one task's, or those in one status) in the order they were
 * dead-lettered, at most `limit`. Everything is validated before any query, and the query filters on the tenant.
 */
export async function taskDeadLetters(pool: pg.Pool, query: TaskDeadLetterQuery): Promise<TaskDeadLetter[]> {
  const rows = await tenantTaskRows<DeadLetterRow>(pool, 'task_dead_letters', 'position', validateTaskDeadLetterQuery(query))
  return rows.map(toDeadLetter)
}

/**
 * Every tenant's dead-lettered runs (optionally in one status), in the order they were dead-lettered: the operator's
 * cross-tenant view (`dead-tasks list` without --tenant). Never expose it on a tenant-scoped path.
 */
export async function deadLettersOfAllTenants(pool: pg.Pool, filters: Omit<TaskDeadLetterFilters, 'taskId'> = {}): Promise<TaskDeadLetter[]> {
  const { status, limit } = validateTaskDeadLetterFilters(filters)
  const result = await pool.query<DeadLetterRow>(
    `select * from task_dead_letters where ($1::text is null or status = $1::text) order by position limit $2`,
    [status, limit],
  )
  return result.rows.map(toDeadLetter)
}
