import type { DeadLetterStatusFilter, TaskDeadLetter } from '../../projections/taskDeadLetters/query'
import {
  deadLettersOfAllTenants,
  TASK_DEAD_LETTERS_DEFAULT_LIMIT,
  TASK_DEAD_LETTERS_MAX_LIMIT,
  taskDeadLetters,
  validateTaskDeadLetterFilters,
  validateTaskDeadLetterQuery,
} from '../../projections/taskDeadLetters/query'
import { pageLimit } from '../../projections/queryFilters'
import { loadConfig } from '../runtime/config'
import { formatRows, type OutputColumn, type OutputFormat } from '../runtime/output'
import { openStorage } from '../runtime/storage'
import { asOptionError } from './audit'

/** The options of `annalist dead-tasks list`, as commander parses them. */
export interface DeadTasksListOptions {
  readonly tenant?: string
  readonly task?: string
  readonly status: string
  readonly limit?: string
  readonly format: OutputFormat
}

const TABLE_COLUMNS: readonly OutputColumn<TaskDeadLetter>[] = [
  { key: 'tenantId', header: 'tenant' },
  { key: 'taskId', header: 'task' },
  { key: 'failedStep', header: 'failed step' },
  { key: 'errorCode', header: 'error' },
  { key: 'attempts', header: 'attempts' },
  { key: 'retryState', header: 'retry state' },
  { key: 'deadLetteredAt', header: 'dead-lettered at' },
  { key: 'status', header: 'status' },
  { key: 'redrivenBy', header: 'redriven by' },
  { key: 'redrivenAt', header: 'redriven at' },
  { key: 'runId', header: 'run' },
  { key: 'redriveRunId', header: 'redrive run' },
]

const CSV_COLUMNS: readonly OutputColumn<TaskDeadLetter>[] = [
  { key: 'tenantId', header: 'tenant_id' },
  { key: 'taskId', header: 'task_id' },
  { key: 'runId', header: 'run_id' },
  { key: 'position', header: 'position' },
  { key: 'eventId', header: 'event_id' },
  { key: 'failedStep', header: 'failed_step' },
  { key: 'errorCode', header: 'error_code' },
  { key: 'message', header: 'message' },
  { key: 'attempts', header: 'attempts' },
  { key: 'retryState', header: 'retry_state' },
  { key: 'failures', header: 'failures' },
  { key: 'deadLetteredAt', header: 'dead_lettered_at' },
  { key: 'status', header: 'status' },
  { key: 'redrivenBy', header: 'redriven_by' },
  { key: 'redrivenAt', header: 'redriven_at' },
  { key: 'redriveRunId', header: 'redrive_run_id' },
  { key: 'redriveNote', header: 'redrive_note' },
]

/**
 * `annalist dead-tasks list [--tenant T] [--task K] [--status open|redriven|all]`: tasks that exhausted a step's retries,
 * from the task_dead_letters read model, in the order they were dead-lettered. Without --tenant: every tenant's (an
 * operator's view). Table: one line per dead letter; JSON: every field, each failed attempt included; CSV: every field,
 * the failed attempts as JSON. Options are validated before storage is opened.
 */
export async function deadTasksListCommand(options: DeadTasksListOptions): Promise<void> {
  let filters: { taskId?: string; status: DeadLetterStatusFilter; limit: number }
  try {
    filters = { taskId: options.task, status: options.status as DeadLetterStatusFilter, limit: pageLimit(options.limit, TASK_DEAD_LETTERS_MAX_LIMIT, TASK_DEAD_LETTERS_DEFAULT_LIMIT) }
    if (options.tenant === undefined) {
      if (options.task !== undefined) throw new RangeError('--task needs --tenant: a task ID is unique only within its tenant')
      validateTaskDeadLetterFilters(filters)
    } else {
      validateTaskDeadLetterQuery({ tenantId: options.tenant, ...filters })
    }
  } catch (error) {
    asOptionError(error)
  }
  const storage = await openStorage(loadConfig())
  try {
    const pool = storage.database.pool
    const letters = options.tenant === undefined ? await deadLettersOfAllTenants(pool, filters) : await taskDeadLetters(pool, { tenantId: options.tenant, ...filters })
    const scope = [options.tenant && `tenant ${options.tenant}`, options.task && `task ${options.task}`, options.status !== 'all' && `status ${options.status}`].filter(Boolean).join(' ')
    const empty = `no dead-lettered tasks${scope ? ` for ${scope}` : ''} (is the projector running?)`
    console.log(formatRows(letters, options.format === 'csv' ? CSV_COLUMNS : TABLE_COLUMNS, options.format, empty))
  } finally {
    await storage.close()
  }
}
