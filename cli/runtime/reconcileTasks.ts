import type { Client } from '@temporalio/client'
import pLimit from 'p-limit'
import type { EventStore } from '../../historian/port'
import { compareTask, dropSettledFindings } from '../../historian/reconcile/compareTask'
import { eventFactOf } from '../../historian/reconcile/eventFacts'
import { ReconcileFindingKind, type ReconcileFinding, type ReconcileReport } from '../../historian/reconcile/reconcileFinding'
import type { TaskFacts } from '../../historian/reconcile/taskFacts'
import { taskStreamName } from '../../historian/streams'
import { pipelineWorkflowId, type TaskRef } from '../../workflows/api'
import { workflowRunsOf } from './temporalHistories'

/** Progress of a reconciliation, after each task. */
export interface ReconcileProgress {
  readonly tasksDone: number
  readonly tasksTotal: number
  readonly findings: number
  readonly task: TaskRef
}

export interface ReconcileOptions {
  /** Tasks checked at once. Default 4. */
  readonly taskConcurrency?: number
  /** Workflow histories fetched at once, across all tasks (each history is itself fetched page by page). Default 4. */
  readonly historyConcurrency?: number
  readonly onProgress?: (progress: ReconcileProgress) => void
}

const readEvents = async (store: EventStore, task: TaskRef) => (await store.readStream(taskStreamName(task.tenantId, task.taskId))).map(eventFactOf)

/** Reads both sides of one task into plain facts: the stream first, then the histories of the runs it names. */
async function taskFacts(deps: { client: Client; store: EventStore }, task: TaskRef, limitHistories: ReturnType<typeof pLimit>): Promise<TaskFacts> {
  const events = await readEvents(deps.store, task)
  const runIdsByWorkflow = new Map<string, Set<string>>([[pipelineWorkflowId(task.tenantId, task.taskId), new Set()]])
  for (const event of events) {
    if (event.workflowId === undefined) continue
    const runIds = runIdsByWorkflow.get(event.workflowId) ?? new Set<string>()
    if (event.runId !== undefined) runIds.add(event.runId)
    runIdsByWorkflow.set(event.workflowId, runIds)
  }
  const runs = await Promise.all([...runIdsByWorkflow].map(([workflowId, runIds]) => workflowRunsOf(deps.client, workflowId, { alsoRunIds: runIds, limit: limitHistories })))
  return { ...task, runs: runs.flat(), events }
}

/**
 * Compares Temporal's history with the event store for each task: every run of the task's workflow (and of any other
 * workflow ID its events name) against the task's stream (historian/reconcile/compareTask.ts). Reads only. Findings of
 * lost events are checked against a second read of the stream, so work finishing during the check is not reported.
 */
export async function reconcileTasks(deps: { client: Client; store: EventStore }, tasks: readonly TaskRef[], options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const limitTasks = pLimit(options.taskConcurrency ?? 4)
  const limitHistories = pLimit(options.historyConcurrency ?? 4)
  const findings: ReconcileFinding[][] = []
  const tasksNotFound: string[] = []
  let workflowRunsChecked = 0
  let activitiesChecked = 0
  let eventsChecked = 0
  let tasksDone = 0
  let findingsSoFar = 0
  await Promise.all(
    tasks.map((task, index) =>
      limitTasks(async () => {
        const facts = await taskFacts(deps, task, limitHistories)
        let found = compareTask(facts)
        // An outcome appended between the stream read and the history fetch is no lost event: read the stream again to settle it.
        const unsettled = found.some((finding) => finding.kind === ReconcileFindingKind.activityWithoutEvents || finding.kind === ReconcileFindingKind.streamMissing)
        if (unsettled) found = dropSettledFindings(found, await readEvents(deps.store, task))
        findings[index] = found
        if (facts.runs.length === 0 && facts.events.length === 0) tasksNotFound.push(task.taskId)
        workflowRunsChecked += facts.runs.length
        activitiesChecked += facts.runs.reduce((sum, run) => sum + run.activities.length, 0)
        eventsChecked += facts.events.length
        findingsSoFar += found.length
        options.onProgress?.({ tasksDone: ++tasksDone, tasksTotal: tasks.length, findings: findingsSoFar, task })
      }),
    ),
  )
  return { tasksChecked: tasks.length, workflowRunsChecked, activitiesChecked, eventsChecked, tasksNotFound: tasksNotFound.sort(), findings: findings.flat() }
}
