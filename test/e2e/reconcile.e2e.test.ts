import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { listTasks } from '../../cli/runtime/temporalHistories'
import { reconcileTasks } from '../../cli/runtime/reconcileTasks'
import type { AnnalistEvent } from '../../historian/events'
import type { ReconcileFinding } from '../../historian/reconcile/reconcileFinding'
import { pipelineWorkflowId } from '../../workflows/api'
import { eventsOfType } from '../support/storedEvents'
import { pipelineHarness, uniqueSuffix, type PipelineHarness } from '../support/pipelineHarness'
import { runAnnalist } from '../support/runCli'

const INPUT = 'Look up account ACC-1042 and summarize its balance'
/** One pipeline per corruption, one left alone; `ghost` gets a stream but never a workflow. */
const PIPELINE_TASKS = ['clean', 'lost', 'forged', 'dup', 'vanished'] as const

const brief = (findings: readonly ReconcileFinding[]) => findings.map((finding) => [finding.kind, finding.taskId, finding.activityId ?? null, finding.eventIds ?? null])

/** Runs real pipelines on `kind`, reconciles them clean, corrupts each side and checks what reconcile finds; returns the fixture. */
function reconcileAgainstRealPipelines(kind: 'postgres' | 'pglite') {
  const tenantId = `rc_${uniqueSuffix()}`
  const startedAt = new Date()
  let harness: PipelineHarness
  const deps = () => ({ client: harness.client, store: harness.store })
  const eventsOf = async (taskId: string) => (await harness.historian.readTask(tenantId, taskId)).events
  const eventOfType = async (taskId: string, type: string) => (await eventsOf(taskId)).find((stored) => stored.event.type === type)!
  /** Appends `event` to a task's stream through the Historian (valid and hash-chained), as a buggy or hostile writer would. */
  const append = async (taskId: string, event: AnnalistEvent) => {
    const eventId = randomUUID()
    await harness.historian.appendToTask(tenantId, taskId, [{ eventId, event }], await harness.historian.readTask(tenantId, taskId))
    return eventId
  }

  beforeAll(async () => {
    // The first planning attempt of `dup` replies malformed JSON, and so does its repair call in the same attempt: neither
    // failed-call record may count as a finding.
    harness = await pipelineHarness(kind, { faults: { rules: [{ target: 'planning', kind: 'malformed', taskId: 'dup', attempts: [1] }] } })
    const results = await harness.run(PIPELINE_TASKS.map((taskId) => ({ tenantId, taskId, input: INPUT, requestedBy: 'reconcile-test' })))
    expect(results.map((result) => result.status)).toEqual(PIPELINE_TASKS.map(() => 'completed'))
  })
  afterAll(async () => {
    await harness?.close()
  })

  it('lists the tenant tasks started in a range and reconciles real pipelines clean', async () => {
    const tasks = await listTasks(deps(), { tenantId, startedFrom: new Date(startedAt.getTime() - 60_000), startedTo: new Date(Date.now() + 60_000) })
    expect(tasks.map((task) => task.taskId)).toEqual([...PIPELINE_TASKS].sort())
    expect(await listTasks(deps(), { tenantId, startedFrom: new Date(Date.now() + 60_000), startedTo: new Date(Date.now() + 120_000) })).toEqual([])

    const report = await reconcileTasks(deps(), tasks)
    const events = (await Promise.all(PIPELINE_TASKS.map(eventsOf))).flat()
    const attemptRecords = eventsOfType(events, 'PlanningModelFailed')
    expect(attemptRecords.map((stored) => [stored.event.metadata.attempt, stored.event.data.willRepair, stored.event.data.isRepair])).toEqual([
      [1, true, false],
      [1, false, true],
    ])
    expect(report).toEqual({
      tasksChecked: PIPELINE_TASKS.length,
      workflowRunsChecked: PIPELINE_TASKS.length,
      // Every activity recorded exactly one outcome; the failed planning call and its failed repair are the only other events.
      activitiesChecked: events.length - 2,
      eventsChecked: events.length,
      tasksNotFound: [],
      findings: [],
    })
  })

  it('finds exactly the corruption made on each side', async () => {
    // (a) an event lost from the store: the plan outcome of `lost`, deleted by SQL.
    const plan = await eventOfType('lost', 'PlanCreated')
    const deleted = await harness.database.pool.query('delete from events where stream_name = $1 and event_id = $2', [plan.streamName, plan.eventId])
    expect(deleted.rowCount).toBe(1)
    // (b) a forged event, for an activity that never ran.
    const tool = (await eventOfType('forged', 'ToolCallExecuted')).event
    const forgedId = await append('forged', { ...tool, metadata: { ...tool.metadata, activityId: 'tool:forged' } } as AnnalistEvent)
    // (c) a second routing outcome of the same activity of the same run.
    const route = (await eventOfType('dup', 'RoutingModelInvoked')).event
    const duplicateId = await append('dup', route)
    // (d) a stream whose workflow Temporal never ran.
    const received = (await eventOfType('clean', 'AgentTaskReceived')).event
    const ghostId = await append('ghost', {
      ...received,
      metadata: { ...received.metadata, taskId: 'ghost', workflowId: pipelineWorkflowId(tenantId, 'ghost'), runId: randomUUID(), correlationId: pipelineWorkflowId(tenantId, 'ghost'), causationId: null },
    } as AnnalistEvent)
    // (e) a whole stream gone while its workflow completed.
    const vanished = await eventsOf('vanished')
    await harness.database.pool.query('delete from events where stream_name = $1', [vanished[0]!.streamName])

    const tasks = await listTasks(deps(), { tenantId })
    expect(tasks.map((task) => task.taskId)).toEqual(['clean', 'dup', 'forged', 'ghost', 'lost', 'vanished'])
    const report = await reconcileTasks(deps(), tasks, { taskConcurrency: 2, historyConcurrency: 2 })
    // The vanished stream's activities come in the order the history scheduled them; tool calls run in parallel.
    const lostActivities = vanished.map((stored) => stored.event.metadata.activityId).sort()
    const isVanishedActivity = (finding: ReconcileFinding) => finding.taskId === 'vanished' && finding.kind === 'activity_without_events'
    expect(brief(report.findings.filter((finding) => !isVanishedActivity(finding)))).toEqual([
      ['duplicate_events', 'dup', 'route', [duplicateId]],
      ['events_without_activity', 'forged', 'tool:forged', [forgedId]],
      ['workflow_missing', 'ghost', null, [ghostId]],
      ['activity_without_events', 'lost', 'plan', null],
      ['stream_missing', 'vanished', null, null],
    ])
    expect(report.findings.filter(isVanishedActivity).map((finding) => finding.activityId).sort()).toEqual(lostActivities)
    const lost = report.findings.find((finding) => finding.taskId === 'lost')!
    expect(lost).toMatchObject({ workflowId: pipelineWorkflowId(tenantId, 'lost'), runId: plan.event.metadata.runId, detail: expect.stringMatching(/^planTask completed on attempt 1 but its outcome is not in the stream$/) })
    expect(report.tasksNotFound).toEqual([])
  })

  it('names a requested task that has neither a workflow nor events', async () => {
    const report = await reconcileTasks(deps(), await listTasks(deps(), { tenantId, taskIds: ['clean', 'no-such-task'] }))
    expect(report).toMatchObject({ tasksChecked: 2, workflowRunsChecked: 1, tasksNotFound: ['no-such-task'], findings: [] })
  })

  return { tenantId, harness: () => harness }
}

describe('reconcile against real pipelines (pglite)', () => {
  reconcileAgainstRealPipelines('pglite')
})

describe('reconcile against real pipelines (postgres server)', () => {
  const { tenantId, harness } = reconcileAgainstRealPipelines('postgres')

  it('runs as `annalist reconcile`: exit 2 and the findings printed, 0 when clean, 1 on bad input', async () => {
    const env = { DATABASE_URL: (harness().database as unknown as { url: string }).url, TEMPORAL_ADDRESS: inject('temporalAddress') }
    const all = await runAnnalist(['reconcile', '--tenant', tenantId, '--format', 'json'], env)
    expect(all.code).toBe(2)
    const report = JSON.parse(all.stdout) as { tasksChecked: number; findings: ReconcileFinding[] }
    expect(report.tasksChecked).toBe(6)
    expect(report.findings.map((finding) => finding.kind)).toContain('events_without_activity')

    const lost = await runAnnalist(['reconcile', '--tenant', tenantId, '--task', 'lost'], env)
    expect(lost.code).toBe(2)
    expect(lost.stdout).toMatch(/activity_without_events.*lost.*plan/)
    expect(lost.stdout).toMatch(new RegExp(`^tenant ${tenantId}: 1 findings \\(1 tasks, 1 workflow runs, \\d+ activities, \\d+ events checked\\)$`, 'm'))
    expect(lost.stderr).toMatch(/reconciling task lost/)

    const clean = await runAnnalist(['reconcile', '--tenant', tenantId, '--task', 'clean', '--format', 'csv'], env)
    expect(clean.code).toBe(0)
    expect(clean.stdout.trim()).toBe('finding,task,activity,run,events,detail')

    const backwards = await runAnnalist(['reconcile', '--tenant', tenantId, '--from', '2026-03-02', '--to', '2026-03-01'], env)
    expect(backwards.code).toBe(1)
    expect(backwards.stderr.trim()).toBe('annalist: invalid time range: from 2026-03-02T00:00:00.000Z is not before to 2026-03-01T00:00:00.000Z  (run with --verbose for details)')
    const badTenant = await runAnnalist(['reconcile', '--tenant', 'Bad-Tenant'], env)
    expect(badTenant.code).toBe(1)
    expect(badTenant.stderr).toMatch(/^annalist: invalid tenant ID "Bad-Tenant"/)
  })
})
