import { Client, Connection } from '@temporalio/client'
import type { ReconcileFinding, ReconcileReport } from '../../historian/reconcile/reconcileFinding'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import { MAX_WINDOW_DAYS, timeWindow, type TimeWindow } from '../../projections/queryFilters'
import type { TaskRef } from '../../workflows/api'
import { loadConfig } from '../runtime/config'
import { formatRows, type OutputColumn, type OutputFormat } from '../runtime/output'
import { startActivityIndicator } from '../runtime/progress'
import { reconcileTasks } from '../runtime/reconcileTasks'
import { openStorage } from '../runtime/storage'
import { listTasks } from '../runtime/temporalHistories'

/** The exit code of `annalist reconcile` when the two sides disagree (1 stays for errors). */
export const FINDINGS_EXIT_CODE = 2

type FindingRow = Omit<ReconcileFinding, 'eventIds'> & { eventIds: string }

const COLUMNS: readonly OutputColumn<FindingRow>[] = [
  { key: 'kind', header: 'finding' },
  { key: 'taskId', header: 'task' },
  { key: 'activityId', header: 'activity' },
  { key: 'runId', header: 'run' },
  { key: 'eventIds', header: 'events' },
  { key: 'detail', header: 'detail' },
]

function summary(tenantId: string, report: ReconcileReport): string {
  const checked = `${report.tasksChecked} tasks, ${report.workflowRunsChecked} workflow runs, ${report.activitiesChecked} activities, ${report.eventsChecked} events checked`
  return report.findings.length === 0 ? `tenant ${tenantId}: Temporal and the event store agree (${checked})` : `tenant ${tenantId}: ${report.findings.length} findings (${checked})`
}

function scopeText(tenantId: string, taskIds: readonly string[], window: TimeWindow | undefined): string {
  const tasks = taskIds.length > 0 ? `task ${taskIds.join(', ')} of tenant ${tenantId}` : `tenant ${tenantId}`
  return window ? `${tasks} (workflows started from ${window.from.toISOString()} to ${window.to.toISOString()})` : tasks
}

/**
 * `annalist reconcile --tenant T [--task K ...] [--from ISO --to ISO]`: compares Temporal's histories of the tenant's
 * tasks with the event store and prints every disagreement (docs/reconcile.md). Exits 0 when both sides agree, 2 when
 * there are findings, 1 on errors (including nothing to reconcile). Progress goes to stderr.
 */
export async function reconcileCommand(options: { tenant: string; task: string[]; from?: string; to?: string; format: OutputFormat }): Promise<void> {
  const tenantId = assertTenantId(options.tenant)
  const taskIds = options.task.map(assertTaskId)
  const window = options.from !== undefined || options.to !== undefined ? timeWindow({ from: options.from, to: options.to }, new Date(), MAX_WINDOW_DAYS) : undefined
  const config = loadConfig()
  if (!config.temporalAddress) throw new Error('TEMPORAL_ADDRESS is not set: `reconcile` reads the workflow histories of a running cluster')

  const connection = await Connection.connect({ address: config.temporalAddress })
  let tasks: TaskRef[]
  let report: ReconcileReport
  try {
    const storage = await openStorage(config)
    const indicator = startActivityIndicator({ label: `reconciling ${scopeText(tenantId, taskIds, undefined)}`, countLabel: 'tasks reconciled' })
    try {
      const deps = { client: new Client({ connection, namespace: config.temporalNamespace }), store: storage.store }
      indicator.note('listing tasks')
      tasks = await listTasks(deps, { tenantId, taskIds: taskIds.length > 0 ? taskIds : undefined, startedFrom: window?.from, startedTo: window?.to })
      report = await reconcileTasks(deps, tasks, { onProgress: (progress) => indicator.tick(`${progress.tasksDone} of ${progress.tasksTotal}, ${progress.findings} findings`) })
    } finally {
      indicator.stop()
      await storage.close()
    }
  } finally {
    await connection.close()
  }
  if (tasks.length === 0) throw new Error(`nothing to reconcile: ${scopeText(tenantId, taskIds, window)} has no workflows and no events`)
  const named = report.tasksNotFound.filter((taskId) => taskIds.includes(taskId))
  if (named.length > 0) throw new Error(`nothing to reconcile for task ${named.join(', ')} of tenant ${tenantId}: no workflow and no events`)

  const rows = report.findings.map((finding) => ({ ...finding, eventIds: finding.eventIds?.join(' ') ?? '' }))
  if (options.format === 'json') console.log(JSON.stringify(report, null, 2))
  else if (options.format === 'csv') console.log(formatRows(rows, COLUMNS, 'csv'))
  else {
    if (rows.length > 0) console.log(formatRows(rows, COLUMNS, 'table'))
    console.log(summary(tenantId, report))
  }
  if (report.findings.length > 0) process.exitCode = FINDINGS_EXIT_CODE
}
