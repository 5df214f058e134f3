import { WorkflowNotFoundError, type Client, type WorkflowExecutionInfo } from '@temporalio/client'
import type { History } from '@temporalio/common/lib/proto-utils'
import type { LimitFunction } from 'p-limit'
import type { EventStore } from '../../historian/port'
import { ActivityState, type ActivityFact, type WorkflowRunFacts } from '../../historian/reconcile/taskFacts'
import { assertTaskId, assertTenantId, parseTaskStreamName } from '../../historian/streams'
import type { TaskRef } from '../../workflows/api'
import { TaskIdSearchAttribute } from './pipelineClient'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const TENANT_LOG_PAGE = 1_000

/** A string literal for a visibility query. Annalist's identifiers never hold quotes; refuse any that would. */
function queryLiteral(value: string): string {
  if (/['"\\]/.test(value)) throw new RangeError(`cannot put ${JSON.stringify(value)} into a visibility query: it holds a quote or backslash`)
  return `'${value}'`
}

/**
 * The activities one workflow run's history scheduled and how each ended so far: ActivityTaskScheduled gives the
 * activity ID; Started, Completed, Failed, TimedOut and CancelCanceled events refer back to it by `scheduledEventId`.
 */
export function activityFactsOf(history: History): ActivityFact[] {
  const byScheduledEvent = new Map<string, { activityId: string; activityType: string; state: ActivityState; attempt?: number }>()
  const update = (attributes: { scheduledEventId?: unknown } | null | undefined, change: (fact: { state: ActivityState; attempt?: number }) => void) => {
    if (!attributes) return
    const fact = byScheduledEvent.get(String(attributes.scheduledEventId))
    if (fact) change(fact)
  }
  for (const event of history.events ?? []) {
    const scheduled = event.activityTaskScheduledEventAttributes
    if (scheduled) {
      byScheduledEvent.set(String(event.eventId), { activityId: scheduled.activityId ?? '', activityType: scheduled.activityType?.name ?? '', state: ActivityState.scheduled })
      continue
    }
    update(event.activityTaskStartedEventAttributes, (fact) => (fact.attempt = event.activityTaskStartedEventAttributes?.attempt ?? undefined))
    update(event.activityTaskCompletedEventAttributes, (fact) => (fact.state = ActivityState.completed))
    update(event.activityTaskFailedEventAttributes, (fact) => (fact.state = ActivityState.failed))
    update(event.activityTaskTimedOutEventAttributes, (fact) => (fact.state = ActivityState.timedOut))
    update(event.activityTaskCanceledEventAttributes, (fact) => (fact.state = ActivityState.canceled))
  }
  return [...byScheduledEvent.values()].map(({ attempt, ...fact }) => (attempt === undefined ? fact : { ...fact, attempt }))
}

/** What is needed of a listed or described run. */
type RunInfo = Pick<WorkflowExecutionInfo, 'runId' | 'status' | 'startTime'>

async function describeRun(client: Client, workflowId: string, runId?: string): Promise<RunInfo | undefined> {
  try {
    return await client.workflow.getHandle(workflowId, runId).describe()
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return undefined
    throw error
  }
}

/**
 * Every run of one workflow ID with the activity facts of its history. Runs come from the visibility list
 * (`WorkflowId = ...`: continued-as-new runs, later runs); because visibility lags a little, runs named by the event store
 * (`alsoRunIds`) but not listed are looked up directly, and so is the latest run when the list is empty. Histories are
 * fetched (every page) through `limit`, so only a few are in flight at once. A run deleted meanwhile is left out.
 */
export async function workflowRunsOf(client: Client, workflowId: string, options: { alsoRunIds?: Iterable<string>; limit: LimitFunction }): Promise<WorkflowRunFacts[]> {
  const infos = new Map<string, RunInfo>()
  for await (const info of client.workflow.list({ query: `WorkflowId = ${queryLiteral(workflowId)}` })) infos.set(info.runId, info)
  const unlisted = [...new Set(options.alsoRunIds ?? [])].filter((runId) => !infos.has(runId) && UUID.test(runId))
  if (infos.size === 0) unlisted.push('')
  for (const runId of unlisted) {
    const info = await options.limit(() => describeRun(client, workflowId, runId || undefined))
    if (info) infos.set(info.runId, info)
  }
  const runs = await Promise.all(
    [...infos.values()].map((info) =>
      options.limit(async (): Promise<WorkflowRunFacts | undefined> => {
        let history: History
        try {
          history = await client.workflow.getHandle(workflowId, info.runId).fetchHistory()
        } catch (error) {
          if (error instanceof WorkflowNotFoundError) return undefined
          throw error
        }
        return { workflowId, runId: info.runId, status: info.status.name, startTime: info.startTime, activities: activityFactsOf(history) }
      }),
    ),
  )
  return runs.filter((run) => run !== undefined).sort((a, b) => (a.startTime?.getTime() ?? 0) - (b.startTime?.getTime() ?? 0))
}

/** Which tasks to reconcile: one tenant's, optionally only those started in [startedFrom, startedTo) or only `taskIds`. */
export interface TaskQuery {
  readonly tenantId: string
  readonly startedFrom?: Date
  readonly startedTo?: Date
  readonly taskIds?: readonly string[]
}

/** The tenant's task IDs that have a stream, with the time their first visible event was recorded. */
async function tenantStreams(store: EventStore, tenantId: string): Promise<Map<string, Date>> {
  const firstRecorded = new Map<string, Date>()
  for (let after: bigint | undefined; ; ) {
    const page = await store.readTenantLog(tenantId, { after, maxCount: TENANT_LOG_PAGE })
    for (const event of page) {
      const { taskId } = parseTaskStreamName(event.streamName)
      if (!firstRecorded.has(taskId)) firstRecorded.set(taskId, event.recordedAt)
    }
    if (page.length < TENANT_LOG_PAGE) return firstRecorded
    after = page[page.length - 1]!.position
  }
}

/**
 * The tasks a reconciliation covers. Named tasks without a time range are taken as named (a task with events and no
 * workflow must still be checked). Otherwise: the tasks whose workflows the visibility list shows for the tenant
 * (TenantId search attribute, StartTime in the range), together with the tenant's streams whose first event was recorded
 * in the range, since a stream whose workflow is gone is exactly what visibility cannot show. Sorted by task ID.
 */
export async function listTasks(deps: { client: Client; store: EventStore }, query: TaskQuery): Promise<TaskRef[]> {
  const tenantId = assertTenantId(query.tenantId)
  const named = query.taskIds?.map(assertTaskId)
  const ranged = query.startedFrom !== undefined || query.startedTo !== undefined
  if (named !== undefined && !ranged) return [...new Set(named)].sort().map((taskId) => ({ tenantId, taskId }))

  const clauses = [`TenantId = ${queryLiteral(tenantId)}`]
  if (query.startedFrom) clauses.push(`StartTime >= ${queryLiteral(query.startedFrom.toISOString())}`)
  if (query.startedTo) clauses.push(`StartTime < ${queryLiteral(query.startedTo.toISOString())}`)
  if (named !== undefined && named.length > 0) clauses.push(`TaskId IN (${named.map(queryLiteral).join(', ')})`)
  const taskIds = new Set<string>()
  for await (const info of deps.client.workflow.list({ query: clauses.join(' AND ') })) {
    const taskId = info.typedSearchAttributes.get(TaskIdSearchAttribute)
    if (taskId !== undefined) taskIds.add(taskId)
  }
  const inRange = (at: Date) => (query.startedFrom === undefined || at >= query.startedFrom) && (query.startedTo === undefined || at < query.startedTo)
  for (const [taskId, recordedAt] of await tenantStreams(deps.store, tenantId)) {
    if (inRange(recordedAt) && (named === undefined || named.includes(taskId))) taskIds.add(taskId)
  }
  return [...taskIds].sort().map((taskId) => ({ tenantId, taskId }))
}
