import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import { Historian } from '../../historian/historian'
import { InvalidIdentifierError } from '../../historian/streams'
import { auditTimelineProjection } from '../../projections/auditTimeline/projection'
import { auditTrail } from '../../projections/auditTimeline/query'
import { rebuildAndCompare } from '../../projections/rebuild'
import { ProjectionRunner } from '../../projections/runner'
import { taskSummaryProjection } from '../../projections/taskSummary/projection'
import { taskSummaries, tenantSummary } from '../../projections/taskSummary/query'
import { atAttempt } from '../support/auditFixtures'
import { DATABASE_BACKENDS, historianPerTest } from '../support/databases'
import { appendTaskEvents, FACTORY_MODELS, TaskEventFactory } from '../../dev/fixtures/eventFactory'

/** A task that succeeds after one failed tool call and one retried synthesis attempt: 8 events. */
async function appendCompletedTask(historian: Historian, tenantId: string, taskId: string): Promise<bigint> {
  const f = new TaskEventFactory(tenantId, taskId)
  const result = await appendTaskEvents(historian, tenantId, taskId, [
    f.received(),
    f.routingInvoked('research'),
    f.planCreated(['search', 'fetch']),
    f.toolExecuted('call-1', 'search', 'side-effect-1'),
    f.toolFailed('call-2', 'fetch'),
    f.synthesisFailed(true, 1),
    f.synthesisInvoked(),
    f.completed({ totalTokens: 1010, totalCostUsd: 0.012, toolCallsSucceeded: 1, toolCallsFailed: 1 }),
  ])
  return result.position
}

/** A task whose routing model times out twice, then gives up: 4 events. */
async function appendFailedTask(historian: Historian, tenantId: string, taskId: string): Promise<bigint> {
  const f = new TaskEventFactory(tenantId, taskId)
  const result = await appendTaskEvents(historian, tenantId, taskId, [
    f.received(),
    f.routingFailed(true, 1),
    f.routingFailed(false, 2),
    f.failed('route', 'MODEL_TIMEOUT'),
  ])
  return result.position
}

/** A failed call the provider billed: a malformed reply, fully generated (1,200 prompt and 300 completion tokens). */
const BILLED_FAILURE = { inputTokens: 1200, outputTokens: 300, costUsd: 0.0048, reported: true }
/** A timed-out call: the provider reported nothing; the prompt's 900 tokens, priced, as a flagged estimate. */
const TIMED_OUT = { inputTokens: 900, outputTokens: 0, costUsd: 0.00225, reported: false }

/** A task whose routing call times out and whose planning call returns a malformed reply, each then retried: 8 events. */
async function appendCostlyFailuresTask(historian: Historian, tenantId: string, taskId: string): Promise<bigint> {
  const f = new TaskEventFactory(tenantId, taskId)
  const result = await appendTaskEvents(historian, tenantId, taskId, [
    f.received(),
    f.routingFailed(true, 1, TIMED_OUT),
    atAttempt(f.routingInvoked('research'), 2), // 100 + 10 tokens, $0.0011
    f.planningFailed(true, 1, BILLED_FAILURE),
    atAttempt(f.planCreated(['search']), 2), // 300 + 40 tokens, $0.0034
    f.toolExecuted('call-1', 'search'),
    f.synthesisInvoked(), // 500 + 60 tokens, $0.0075
    f.completed({ totalTokens: 2510, totalCostUsd: 0.0168, toolCallsSucceeded: 1, toolCallsFailed: 0 }),
  ])
  return result.position
}

/** Every row of a table as JSON, in a fixed order: the read model's full content. */
async function tableContents(pool: pg.Pool, table: 'audit_timeline' | 'task_summary'): Promise<unknown[]> {
  const order = table === 'audit_timeline' ? 'position' : 'tenant_id, task_id'
  const result = await pool.query<{ row: unknown }>(`select to_jsonb(t) as row from ${table} t order by ${order}`)
  return result.rows.map((r) => r.row)
}

describe.each(DATABASE_BACKENDS)('read models on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const projections = () => [auditTimelineProjection(), taskSummaryProjection()]
  const runner = (batchSize = 100) => new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: projections(), batchSize })

  it('given two tasks, then new events, the read models hold exactly what happened', async () => {
    const okEnd = await appendCompletedTask(fixture.historian, 'acme', 'task-ok')
    const badEnd = await appendFailedTask(fixture.historian, 'acme', 'task-bad')
    expect(await runner().catchUp()).toBe(badEnd)

    const [ok, bad] = await taskSummaries(fixture.database.pool, { tenantId: 'acme' })
    expect(ok).toEqual({
      tenantId: 'acme',
      taskId: 'task-ok',
      status: 'completed',
      currentStep: 'complete',
      failedStep: null,
      errorCode: null,
      route: 'research',
      toolCallsSucceeded: 1,
      toolCallsFailed: 1,
      modelAttemptsFailed: 1,
      attempts: 7,
      modelsUsed: [
        { role: 'routing', ...FACTORY_MODELS.routing, templateId: 'route', templateVersion: '1' },
        { role: 'planning', ...FACTORY_MODELS.planning, templateId: 'plan', templateVersion: '1' },
        { role: 'synthesis', ...FACTORY_MODELS.synthesis, templateId: 'synthesize', templateVersion: '1' },
      ],
      totalTokens: 110 + 340 + 560,
      totalCostUsd: 0.012,
      // The failed synthesis call reported no usage: counted, its 40-token estimate kept out of the totals.
      failedCallCostUsd: 0,
      callsWithoutReportedUsage: 1,
      estimatedUnreportedTokens: 40,
      estimatedUnreportedCostUsd: 0,
      eventsApplied: 8,
      startedAt: new Date('2026-01-15T09:00:00.000Z'),
      finishedAt: new Date('2026-01-15T09:00:07.000Z'),
      firstPosition: okEnd - 7n,
      lastPosition: okEnd,
    })
    expect(bad).toMatchObject({
      taskId: 'task-bad',
      status: 'failed',
      currentStep: 'route',
      failedStep: 'route',
      errorCode: 'MODEL_TIMEOUT',
      route: null,
      modelAttemptsFailed: 2,
      modelsUsed: [{ role: 'routing', ...FACTORY_MODELS.routing, templateId: 'route', templateVersion: '1' }],
      totalTokens: 0,
      totalCostUsd: 0,
      callsWithoutReportedUsage: 2,
      estimatedUnreportedTokens: 80,
      eventsApplied: 4,
      finishedAt: new Date('2026-01-15T09:00:03.000Z'),
      lastPosition: badEnd,
    })

    const trail = await auditTrail(fixture.database.pool, { tenantId: 'acme', taskId: 'task-ok' })
    expect(trail.map((entry) => entry.eventType)).toEqual([
      'AgentTaskReceived',
      'RoutingModelInvoked',
      'PlanCreated',
      'ToolCallExecuted',
      'ToolCallFailed',
      'SynthesisModelFailed',
      'SynthesisModelInvoked',
      'AgentTaskCompleted',
    ])
    expect(trail.map((entry) => entry.streamRevision)).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n])
    expect(trail[1]).toMatchObject({
      summary: "routing model scripted-router@2026-01 chose route 'research'",
      modelProvider: 'scripted',
      modelId: 'scripted-router',
      modelVersion: '2026-01',
      promptTemplateId: 'route',
      promptTemplateVersion: '1',
      route: 'research',
      inputTokens: 100,
      outputTokens: 10,
      costUsd: 0.0011,
      usageReported: true,
      finishReason: 'stop',
      structuredOutputPath: 'constrained',
      latencyMs: 120,
      occurredAt: new Date('2026-01-15T09:00:01.000Z'),
      workflowId: 'agent-pipeline:acme:task-ok',
    })
    expect(trail[1]!.promptSha256).toMatch(/^[0-9a-f]{64}$/)
    expect(trail[3]).toMatchObject({ toolName: 'search', toolCallId: 'call-1', idempotencyKey: 'idem-task-ok-call-1', sideEffectId: 'side-effect-1', modelId: null })
    expect(trail[4]).toMatchObject({ toolName: 'fetch', errorCode: 'TOOL_TIMEOUT', summary: 'tool fetch (call call-2) failed with TOOL_TIMEOUT' })
    expect(trail[5]).toMatchObject({ errorCode: 'MODEL_PROVIDER_ERROR', willRetry: true, inputTokens: 40, outputTokens: 0, costUsd: 0, usageReported: false, finishReason: null })
    expect(trail[6]).toMatchObject({ usageReported: true, finishReason: 'stop', structuredOutputPath: null })
    expect(trail[3]).toMatchObject({ usageReported: null, finishReason: null, structuredOutputPath: null, inputTokens: null })

    // When new events arrive for a new task and the runner catches up again, only they are added.
    const f = new TaskEventFactory('acme', 'task-new')
    const newEnd = (await appendTaskEvents(fixture.historian, 'acme', 'task-new', [f.received(), f.routingInvoked('support')])).position
    expect(await runner().catchUp()).toBe(newEnd)
    const [, , fresh] = await taskSummaries(fixture.database.pool, { tenantId: 'acme' })
    expect(fresh).toMatchObject({ taskId: 'task-new', status: 'running', currentStep: 'route', route: 'support', eventsApplied: 2, finishedAt: null })
    const all = await auditTrail(fixture.database.pool, { tenantId: 'acme' })
    expect(all).toHaveLength(14)
    expect(all.map((entry) => entry.position)).toEqual([...all.map((entry) => entry.position)].sort((a, b) => (a < b ? -1 : 1)))
    expect(await taskSummaries(fixture.database.pool, { tenantId: 'acme', taskId: 'task-ok' })).toEqual([ok])
  })

  it('applying the same events again, from 0 or from the middle, in any batch size, changes nothing', async () => {
    await appendCompletedTask(fixture.historian, 'acme', 'task-ok')
    await appendFailedTask(fixture.historian, 'acme', 'task-bad')
    await runner().catchUp()
    const audit = await tableContents(fixture.database.pool, 'audit_timeline')
    const summary = await tableContents(fixture.database.pool, 'task_summary')
    expect(audit).toHaveLength(12)
    expect(summary).toHaveLength(2)

    await fixture.database.pool.query('update projection_checkpoints set position = 0')
    await runner(1).catchUp()
    expect(await tableContents(fixture.database.pool, 'audit_timeline')).toEqual(audit)
    expect(await tableContents(fixture.database.pool, 'task_summary')).toEqual(summary)

    const middle = (await auditTrail(fixture.database.pool, { tenantId: 'acme' }))[5]!.position
    await fixture.database.pool.query('update projection_checkpoints set position = $1', [middle.toString()])
    await runner(3).catchUp()
    expect(await tableContents(fixture.database.pool, 'audit_timeline')).toEqual(audit)
    expect(await tableContents(fixture.database.pool, 'task_summary')).toEqual(summary)
  })

  it('the incremental read models equal a rebuild from 0, and a corrupted live row is reported', async () => {
    await appendCompletedTask(fixture.historian, 'acme', 'task-ok')
    // Applied in small batches, interleaved with appends, so incremental and rebuilt histories really differ in shape.
    await runner(2).catchUp()
    const end = await appendFailedTask(fixture.historian, 'globex', 'task-bad')
    await runner(3).catchUp()

    const clean = await rebuildAndCompare(fixture.store, fixture.database.pool, projections())
    expect(clean).toEqual({ matches: true, differences: [], positions: { audit_timeline: end, task_summary: end } })

    const [, routing] = await auditTrail(fixture.database.pool, { tenantId: 'acme' })
    await fixture.database.pool.query(`update audit_timeline set summary = 'nothing to see here' where position = $1`, [routing!.position.toString()])
    await fixture.database.pool.query(`update task_summary set total_tokens = total_tokens + 1 where task_id = 'task-ok'`)
    await fixture.database.pool.query(`delete from audit_timeline where tenant_id = 'globex' and event_type = 'AgentTaskFailed'`)

    const corrupted = await rebuildAndCompare(fixture.store, fixture.database.pool, projections())
    expect(corrupted.matches).toBe(false)
    expect(corrupted.differences).toHaveLength(3)
    expect(corrupted.differences).toContainEqual(
      `audit_timeline [position=${routing!.position}]: summary live "nothing to see here" vs rebuilt "routing model scripted-router@2026-01 chose route 'research'"`,
    )
    expect(corrupted.differences).toContainEqual(`task_summary [tenant_id="acme", task_id="task-ok"]: total_tokens live 1011 vs rebuilt 1010`)
    expect(corrupted.differences).toContainEqual(`audit_timeline [position=${end}]: in the rebuild but missing from the live table`)

    const leftovers = await fixture.database.pool.query(`select table_name from information_schema.tables where table_name like '%rebuild%'`)
    expect(leftovers.rows).toEqual([])
  })

  it('counts what failed calls cost: reported usage in the totals and in failedCallCostUsd, an unreported call as a flagged estimate apart', async () => {
    const pool = fixture.database.pool
    await appendCostlyFailuresTask(fixture.historian, 'acme', 'task-costly')
    const end = await appendFailedTask(fixture.historian, 'acme', 'task-bad') // two timeouts, 40-token estimates priced at 0
    await runner(3).catchUp()

    const [costly] = await taskSummaries(pool, { tenantId: 'acme', taskId: 'task-costly' })
    expect(costly).toMatchObject({
      status: 'completed',
      modelAttemptsFailed: 2,
      // Reported usage of every call: the malformed reply's 1,500 tokens and $0.0048 included, the timeout's estimate not.
      totalTokens: 110 + 1500 + 340 + 560,
      totalCostUsd: 0.0168,
      failedCallCostUsd: 0.0048,
      callsWithoutReportedUsage: 1,
      estimatedUnreportedTokens: 900,
      estimatedUnreportedCostUsd: 0.00225,
    })
    const exact = await pool.query(
      `select total_cost_usd::text as total, failed_call_cost_usd::text as failed, estimated_unreported_cost_usd::text as estimated
         from task_summary where task_id = 'task-costly'`,
    )
    expect(exact.rows).toEqual([{ total: '0.0168', failed: '0.0048', estimated: '0.00225' }])
    expect(await tenantSummary(pool, 'acme')).toMatchObject({
      modelAttemptsFailed: 4,
      totalTokens: 2510,
      totalCostUsd: 0.0168,
      failedCallCostUsd: 0.0048,
      callsWithoutReportedUsage: 3,
      estimatedUnreportedTokens: 980,
      estimatedUnreportedCostUsd: 0.00225,
    })

    const failures = await auditTrail(pool, { tenantId: 'acme', taskId: 'task-costly', eventTypes: ['RoutingModelFailed', 'PlanningModelFailed'] })
    expect(failures.map(({ eventType, inputTokens, outputTokens, costUsd, usageReported }) => ({ eventType, inputTokens, outputTokens, costUsd, usageReported }))).toEqual([
      { eventType: 'RoutingModelFailed', inputTokens: 900, outputTokens: 0, costUsd: 0.00225, usageReported: false },
      { eventType: 'PlanningModelFailed', inputTokens: 1200, outputTokens: 300, costUsd: 0.0048, usageReported: true },
    ])

    // Applying every event again, from 0 one at a time, changes nothing; a rebuild from 0 equals the live model.
    const audit = await tableContents(pool, 'audit_timeline')
    const summary = await tableContents(pool, 'task_summary')
    await pool.query('update projection_checkpoints set position = 0')
    await runner(1).catchUp()
    expect(await tableContents(pool, 'audit_timeline')).toEqual(audit)
    expect(await tableContents(pool, 'task_summary')).toEqual(summary)
    expect(await rebuildAndCompare(fixture.store, pool, projections())).toEqual({ matches: true, differences: [], positions: { audit_timeline: end, task_summary: end } })
  })

  it('scopes every query to one validated tenant', async () => {
    await appendCompletedTask(fixture.historian, 'acme', 'task-ok')
    await appendFailedTask(fixture.historian, 'acme', 'task-bad')
    await appendCompletedTask(fixture.historian, 'globex', 'task-ok')
    await appendFailedTask(fixture.historian, 'globex', 'task-g')
    await runner().catchUp()

    const acme = await auditTrail(fixture.database.pool, { tenantId: 'acme' })
    expect(acme).toHaveLength(12)
    expect(new Set(acme.map((entry) => entry.tenantId))).toEqual(new Set(['acme']))
    expect(await auditTrail(fixture.database.pool, { tenantId: 'acme', taskId: 'task-g' })).toEqual([])
    expect(await auditTrail(fixture.database.pool, { tenantId: 'initech' })).toEqual([])
    const globexOk = await auditTrail(fixture.database.pool, { tenantId: 'globex', taskId: 'task-ok' })
    expect(globexOk).toHaveLength(8)
    expect(globexOk.every((entry) => entry.tenantId === 'globex' && entry.taskId === 'task-ok')).toBe(true)

    // Paging: pages of 5 after a position add up to the whole trail, with no overlap.
    const pages = []
    for (let after = 0n; ; ) {
      const page = await auditTrail(fixture.database.pool, { tenantId: 'acme', afterPosition: after, limit: 5 })
      if (page.length === 0) break
      pages.push(...page)
      after = page[page.length - 1]!.position
    }
    expect(pages).toEqual(acme)

    expect((await taskSummaries(fixture.database.pool, { tenantId: 'globex' })).map((task) => `${task.tenantId}/${task.taskId}`)).toEqual([
      'globex/task-ok',
      'globex/task-g',
    ])
    expect(await tenantSummary(fixture.database.pool, 'acme')).toEqual({
      tenantId: 'acme',
      tasks: 2,
      byStatus: { received: 0, running: 0, completed: 1, failed: 1, cancelled: 0 },
      toolCallsSucceeded: 1,
      toolCallsFailed: 1,
      modelAttemptsFailed: 3,
      attempts: 7 + 4,
      totalTokens: 1010,
      totalCostUsd: 0.012,
      failedCallCostUsd: 0,
      callsWithoutReportedUsage: 3,
      estimatedUnreportedTokens: 120,
      estimatedUnreportedCostUsd: 0,
      eventsApplied: 12,
    })
    expect((await tenantSummary(fixture.database.pool, 'initech')).tasks).toBe(0)
    const onlyCompleted = await tenantSummary(fixture.database.pool, 'acme', { taskIds: (await taskSummaries(fixture.database.pool, { tenantId: 'acme' })).filter((task) => task.status === 'completed').map((task) => task.taskId) })
    expect(onlyCompleted).toMatchObject({ tasks: 1, byStatus: { completed: 1, failed: 0 } })
    await expect(tenantSummary(fixture.database.pool, 'acme', { taskIds: ['../etc'] })).rejects.toBeInstanceOf(InvalidIdentifierError)

    for (const bad of ['Acme', 'acme-corp', '', "acme' or '1'='1"]) {
      await expect(auditTrail(fixture.database.pool, { tenantId: bad })).rejects.toBeInstanceOf(InvalidIdentifierError)
      await expect(taskSummaries(fixture.database.pool, { tenantId: bad })).rejects.toBeInstanceOf(InvalidIdentifierError)
      await expect(tenantSummary(fixture.database.pool, bad)).rejects.toBeInstanceOf(InvalidIdentifierError)
    }
    await expect(auditTrail(fixture.database.pool, { tenantId: 'acme', taskId: '../etc' })).rejects.toBeInstanceOf(InvalidIdentifierError)
    await expect(auditTrail(fixture.database.pool, { tenantId: 'acme', limit: 0 })).rejects.toThrow(/limit/)
  })
})
