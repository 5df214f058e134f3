import { pageLimit } from '../../projections/queryFilters'
import type { TaskStatus } from '../../projections/taskSummary/projection'
import {
  TASK_SUMMARIES_DEFAULT_LIMIT,
  TASK_SUMMARIES_MAX_LIMIT,
  taskSummaries,
  tenantSummary,
  validateTaskSummaryQuery,
  type TaskSummary,
  type TaskSummaryQuery,
  type TaskTotals,
  type TenantSummary,
} from '../../projections/taskSummary/query'
import { loadConfig } from '../runtime/config'
import { formatRows, jsonReplacer, type OutputColumn, type OutputFormat } from '../runtime/output'
import { openStorage } from '../runtime/storage'
import { asOptionError } from './audit'

/** The options of `annalist report`, as commander parses them. */
export interface ReportOptions {
  readonly tenant: string
  readonly task?: string
  readonly status?: string
  readonly limit?: string
  readonly format: OutputFormat
}

/** One printed line of the report: a task, or the totals row of a CSV report. */
interface ReportRow extends TaskTotals {
  readonly taskId: string
  readonly status: string
  readonly currentStep: string
  readonly failedStep: string | null
  readonly errorCode: string | null
  readonly models: string
  readonly modelsUsed: TaskSummary['modelsUsed'] | null
  readonly startedAt: Date | null
  readonly finishedAt: Date | null
}

const TABLE_COLUMNS: readonly OutputColumn<ReportRow>[] = [
  { key: 'taskId', header: 'task' },
  { key: 'status', header: 'status' },
  { key: 'currentStep', header: 'step' },
  { key: 'failedStep', header: 'failed step' },
  { key: 'errorCode', header: 'error' },
  { key: 'attempts', header: 'attempts' },
  { key: 'toolCallsSucceeded', header: 'tools ok' },
  { key: 'toolCallsFailed', header: 'tools failed' },
  { key: 'modelAttemptsFailed', header: 'model failures' },
  { key: 'totalTokens', header: 'tokens' },
  { key: 'totalCostUsd', header: 'cost (USD)' },
  { key: 'failedCallCostUsd', header: 'failed calls (USD)' },
  { key: 'callsWithoutReportedUsage', header: 'calls w/o usage' },
  { key: 'estimatedUnreportedCostUsd', header: 'est. unreported (USD)' },
  { key: 'models', header: 'models' },
]

const CSV_COLUMNS: readonly OutputColumn<ReportRow>[] = [
  { key: 'taskId', header: 'task_id' },
  { key: 'status', header: 'status' },
  { key: 'currentStep', header: 'current_step' },
  { key: 'failedStep', header: 'failed_step' },
  { key: 'errorCode', header: 'error_code' },
  { key: 'attempts', header: 'attempts' },
  { key: 'toolCallsSucceeded', header: 'tool_calls_succeeded' },
  { key: 'toolCallsFailed', header: 'tool_calls_failed' },
  { key: 'modelAttemptsFailed', header: 'model_attempts_failed' },
  { key: 'totalTokens', header: 'total_tokens' },
  { key: 'totalCostUsd', header: 'total_cost_usd' },
  { key: 'failedCallCostUsd', header: 'failed_call_cost_usd' },
  { key: 'callsWithoutReportedUsage', header: 'calls_without_reported_usage' },
  { key: 'estimatedUnreportedTokens', header: 'estimated_unreported_tokens' },
  { key: 'estimatedUnreportedCostUsd', header: 'estimated_unreported_cost_usd' },
  { key: 'modelsUsed', header: 'models_used' },
  { key: 'startedAt', header: 'started_at' },
  { key: 'finishedAt', header: 'finished_at' },
]

/** The CSV report's last row: the tenant's totals over every matching task, under task_id `(total)`. */
export const TOTAL_ROW_TASK_ID = '(total)'

function taskRow(task: TaskSummary): ReportRow {
  return {
    ...task,
    models: [...new Set(task.modelsUsed.map((use) => `${use.modelId}@${use.modelVersion}`))].join(' '),
    modelsUsed: task.modelsUsed,
  }
}

function statusCounts(totals: TenantSummary): string {
  return Object.entries(totals.byStatus)
    .map(([status, count]) => `${status} ${count}`)
    .join(', ')
}

function totalRow(totals: TenantSummary): ReportRow {
  return {
    ...totals,
    taskId: TOTAL_ROW_TASK_ID,
    status: statusCounts(totals),
    currentStep: '',
    failedStep: null,
    errorCode: null,
    models: '',
    modelsUsed: null,
    startedAt: null,
    finishedAt: null,
  }
}

/**
 * The totals line: reported tokens and cost (failed calls' part in brackets), then, when some calls reported no usage,
 * how many and their estimate, said to be outside the totals.
 */
function totalsLine(totals: TenantSummary): string {
  const unreported = totals.callsWithoutReportedUsage
  return (
    `tenant ${totals.tenantId}: ${totals.tasks} task${totals.tasks === 1 ? '' : 's'} (${statusCounts(totals)}), ${totals.attempts} attempts, ` +
    `${totals.toolCallsSucceeded} tool calls ok, ${totals.toolCallsFailed} failed, ${totals.modelAttemptsFailed} failed model attempts, ` +
    `${totals.totalTokens} tokens, $${totals.totalCostUsd.toFixed(6)} reported (failed calls $${totals.failedCallCostUsd.toFixed(6)})` +
    (unreported === 0
      ? ''
      : `; ${unreported} call${unreported === 1 ? '' : 's'} without reported usage, estimated ${totals.estimatedUnreportedTokens} tokens, ` +
        `$${totals.estimatedUnreportedCostUsd.toFixed(6)} (not in the totals)`)
  )
}

/**
 * `annalist report --tenant T [--task K] [--status S]`: the tenant's task summaries and its totals over the same
 * filter. Table: the tasks, then a totals line. JSON: `{ totals, tasks }`. CSV: one row per task, then a totals row
 * whose task_id is `(total)`. Every option is validated before storage is opened.
 */
export async function reportCommand(options: ReportOptions): Promise<void> {
  let query: TaskSummaryQuery
  try {
    query = {
      tenantId: options.tenant,
      taskId: options.task,
      status: options.status as TaskStatus | undefined,
      limit: pageLimit(options.limit, TASK_SUMMARIES_MAX_LIMIT, TASK_SUMMARIES_DEFAULT_LIMIT),
    }
    validateTaskSummaryQuery(query)
  } catch (error) {
    asOptionError(error)
  }
  const storage = await openStorage(loadConfig())
  try {
    const tasks = await taskSummaries(storage.database.pool, query)
    const totals = await tenantSummary(storage.database.pool, options.tenant, {
      taskIds: options.task === undefined ? undefined : [options.task],
      status: query.status,
    })
    switch (options.format) {
      case 'json':
        console.log(JSON.stringify({ totals, tasks }, jsonReplacer, 2))
        return
      case 'csv':
        console.log(formatRows([...tasks.map(taskRow), totalRow(totals)], CSV_COLUMNS, 'csv'))
        return
      case 'table': {
        const scope = `tenant ${options.tenant}${options.task ? ` task ${options.task}` : ''}${options.status ? ` status ${options.status}` : ''}`
        console.log(formatRows(tasks.map(taskRow), TABLE_COLUMNS, 'table', `no tasks for ${scope} (is the projector running?)`))
        if (tasks.length < totals.tasks) console.log(`(${tasks.length} of ${totals.tasks} tasks listed; raise --limit to see more)`)
        console.log(totalsLine(totals))
      }
    }
  } finally {
    await storage.close()
  }
}
