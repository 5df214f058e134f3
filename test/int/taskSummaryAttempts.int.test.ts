import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import { rebuildAndCompare } from '../../projections/rebuild'
import { ProjectionRunner } from '../../projections/runner'
import { InvalidQueryError } from '../../projections/queryFilters'
import { taskSummaries, tenantSummary } from '../../projections/taskSummary/query'
import { appendAuditScenario, atAttempt, auditProjections } from '../support/auditFixtures'
import { DATABASE_BACKENDS, historianPerTest, migrateSchema, migrationsFrom } from '../support/databases'
import { appendTaskEvents, FACTORY_MODELS, TaskEventFactory } from '../../dev/fixtures/eventFactory'

async function summaryRows(pool: pg.Pool): Promise<unknown[]> {
  const result = await pool.query<{ row: unknown }>(`select to_jsonb(t) as row from task_summary t order by tenant_id, task_id`)
  return result.rows.map((r) => r.row)
}

describe.each(DATABASE_BACKENDS)('task summary on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const catchUp = (batchSize = 100) => new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: auditProjections(), batchSize }).catchUp()

  it('counts activity attempts, including retries after failures and after crashes that recorded nothing', async () => {
    await appendAuditScenario(fixture.historian, 'acme')
    await catchUp()
    const [a, b, c] = await taskSummaries(fixture.database.pool, { tenantId: 'acme' })
    expect(a).toMatchObject({
      taskId: 'task-a',
      status: 'completed',
      currentStep: 'complete',
      failedStep: null,
      attempts: 8,
      modelAttemptsFailed: 1,
      toolCallsSucceeded: 1,
      toolCallsFailed: 1,
      totalTokens: 110 + 340 + 560,
      totalCostUsd: 0.012,
      modelsUsed: [
        { role: 'routing', ...FACTORY_MODELS.routing, templateId: 'route', templateVersion: '1' },
        { role: 'planning', ...FACTORY_MODELS.planning, templateId: 'plan', templateVersion: '1' },
        { role: 'synthesis', ...FACTORY_MODELS.synthesis, templateId: 'synthesize', templateVersion: '1' },
      ],
    })
    expect(b).toMatchObject({ taskId: 'task-b', status: 'failed', currentStep: 'route', failedStep: 'route', errorCode: 'MODEL_TIMEOUT', attempts: 4, modelAttemptsFailed: 2, totalTokens: 0 })
    expect(c).toMatchObject({ taskId: 'task-c', status: 'completed', attempts: 7, modelAttemptsFailed: 0 })
    expect(c!.modelsUsed.find((use) => use.role === 'synthesis')).toMatchObject({ modelVersion: '2026-03', templateVersion: '2' })

    // A late event of an earlier attempt (a zombie) does not lower or raise the count; a new attempt of the same activity raises it.
    const f = new TaskEventFactory('acme', 'task-d')
    await appendTaskEvents(fixture.historian, 'acme', 'task-d', [f.received(), atAttempt(f.routingFailed(true, 1), 4)])
    await catchUp()
    expect((await taskSummaries(fixture.database.pool, { tenantId: 'acme', taskId: 'task-d' }))[0]).toMatchObject({ status: 'running', currentStep: 'route', attempts: 5 })
    await appendTaskEvents(fixture.historian, 'acme', 'task-d', [f.routingFailed(true, 2), atAttempt(f.routingInvoked(), 5)])
    await catchUp()
    expect((await taskSummaries(fixture.database.pool, { tenantId: 'acme', taskId: 'task-d' }))[0]).toMatchObject({ attempts: 6, modelAttemptsFailed: 2 })
  })

  it('applying events again, in other batch sizes, changes nothing, and equals a rebuild from 0', async () => {
    await appendAuditScenario(fixture.historian, 'acme')
    await appendAuditScenario(fixture.historian, 'globex')
    await catchUp(3)
    const before = await summaryRows(fixture.database.pool)
    await fixture.database.pool.query('update projection_checkpoints set position = 0')
    await catchUp(1)
    expect(await summaryRows(fixture.database.pool)).toEqual(before)
    const compared = await rebuildAndCompare(fixture.store, fixture.database.pool, auditProjections())
    expect(compared.differences).toEqual([])
  })

  it('filters by task, status and limit, and totals attempts per tenant', async () => {
    await appendAuditScenario(fixture.historian, 'acme')
    await appendAuditScenario(fixture.historian, 'globex')
    await catchUp()
    const pool = fixture.database.pool
    expect((await taskSummaries(pool, { tenantId: 'acme', status: 'completed' })).map((task) => task.taskId)).toEqual(['task-a', 'task-c'])
    expect((await taskSummaries(pool, { tenantId: 'acme', status: 'failed' })).map((task) => `${task.tenantId}/${task.taskId}`)).toEqual(['acme/task-b'])
    expect(await taskSummaries(pool, { tenantId: 'acme', status: 'running' })).toEqual([])
    expect((await taskSummaries(pool, { tenantId: 'acme', limit: 2 })).map((task) => task.taskId)).toEqual(['task-a', 'task-b'])
    expect(await taskSummaries(pool, { tenantId: 'acme', taskId: 'task-b', status: 'completed' })).toEqual([])
    await expect(taskSummaries(pool, { tenantId: 'acme', status: "failed' or '1'='1" as never })).rejects.toBeInstanceOf(InvalidQueryError)

    expect(await tenantSummary(pool, 'acme')).toMatchObject({ tasks: 3, attempts: 8 + 4 + 7, byStatus: { completed: 2, failed: 1, running: 0, received: 0 } })
    expect(await tenantSummary(pool, 'acme', { status: 'completed' })).toMatchObject({ tasks: 2, attempts: 15, totalTokens: 2020 })
    expect(await tenantSummary(pool, 'acme', { taskIds: ['task-b'], status: 'failed' })).toMatchObject({ tasks: 1, attempts: 4 })
    expect(await tenantSummary(pool, 'nobody')).toMatchObject({ tasks: 0, attempts: 0 })
  })

  it('migration 010 fills attempts of existing rows from the audit timeline', async () => {
    await appendAuditScenario(fixture.historian, 'acme')
    await catchUp()
    const built = await summaryRows(fixture.database.pool)
    await migrateSchema(fixture.database.pool, 'down', migrationsFrom(10))
    const columns = await fixture.database.pool.query(`select column_name from information_schema.columns where table_name = 'task_summary' and column_name in ('attempts', 'activity_attempts')`)
    expect(columns.rows).toEqual([])
    await migrateSchema(fixture.database.pool, 'up')
    expect(await summaryRows(fixture.database.pool)).toEqual(built)
  })
})
