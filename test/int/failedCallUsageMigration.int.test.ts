import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import type { ModelUsage } from '../../historian/events'
import type { Historian, PendingEvent } from '../../historian/historian'
import { defaultProjections } from '../../projections/defaultProjections'
import { rebuildAndCompare } from '../../projections/rebuild'
import { ProjectionRunner } from '../../projections/runner'
import { atAttempt } from '../support/auditFixtures'
import { DATABASE_BACKENDS, historianPerTest, migrateSchema, migrationsFrom } from '../support/databases'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'

const TABLES = ['audit_timeline', 'task_summary', 'analytics_model_invocations'] as const

/** The same successful model event with other usage (a server that sends none, say). */
function withUsage(pending: PendingEvent, usage: ModelUsage): PendingEvent {
  return { ...pending, event: { ...pending.event, data: { ...pending.event.data, usage } } as PendingEvent['event'] }
}

/**
 * task-costly: routing times out (no usage reported, a 900-token estimate at $0.00225), planning returns a malformed
 * reply the provider billed (1,200 + 300 tokens, $0.0048), and synthesis answers from a server that reports no usage
 * (a 500-token estimate at $0.001). task-bad: routing times out twice with the factory's unpriced 40-token estimates.
 */
async function appendScenario(historian: Historian): Promise<bigint> {
  const f = new TaskEventFactory('acme', 'task-costly')
  await appendTaskEvents(historian, 'acme', 'task-costly', [
    f.received(),
    f.routingFailed(true, 1, { inputTokens: 900, outputTokens: 0, costUsd: 0.00225, reported: false }),
    atAttempt(f.routingInvoked('research'), 2), // 100 + 10 tokens, $0.0011
    f.planningFailed(true, 1, { inputTokens: 1200, outputTokens: 300, costUsd: 0.0048, reported: true }),
    atAttempt(f.planCreated(['search']), 2), // 300 + 40 tokens, $0.0034
    f.toolExecuted('call-1', 'search'),
    withUsage(f.synthesisInvoked(), { inputTokens: 500, outputTokens: 0, costUsd: 0.001, reported: false }),
    f.completed({ totalTokens: 1950, totalCostUsd: 0.0093, toolCallsSucceeded: 1, toolCallsFailed: 0 }),
  ])
  const b = new TaskEventFactory('acme', 'task-bad')
  return (await appendTaskEvents(historian, 'acme', 'task-bad', [b.received(), b.routingFailed(true, 1), b.routingFailed(false, 2), b.failed('route', 'MODEL_TIMEOUT')])).position
}

async function contents(pool: pg.Pool): Promise<Record<string, unknown[]>> {
  const entries = await Promise.all(
    TABLES.map(async (table) => {
      const order = table === 'task_summary' ? 'tenant_id, task_id' : 'position'
      const result = await pool.query<{ row: unknown }>(`select to_jsonb(t) as row from ${table} t order by ${order}`)
      return [table, result.rows.map((r) => r.row)] as const
    }),
  )
  return Object.fromEntries(entries)
}

/**
 * Migrates down past 013 and leaves the rows as the build before it wrote them: a failed call with no usage in the
 * trail (null) and in the analytics (0), and task totals over the successful calls only, estimates included.
 */
async function rowsOfTheOlderBuild(pool: pg.Pool): Promise<void> {
  await migrateSchema(pool, 'down', migrationsFrom(13))
  await pool.query(`update audit_timeline set input_tokens = null, output_tokens = null, cost_usd = null where event_type like '%ModelFailed'`)
  await pool.query(`update analytics_model_invocations set input_tokens = 0, output_tokens = 0, cost_usd = 0 where outcome = 'failed'`)
  await pool.query(`update task_summary set total_tokens = 110 + 340 + 500, total_cost_usd = 0.0011 + 0.0034 + 0.001 where task_id = 'task-costly'`)
}

describe.each(DATABASE_BACKENDS)('migration 013 (failed-call usage) on $backend', ({ open }) => {
  const fixture = historianPerTest(open)

  it("fills existing rows from the log in the database, so the read models equal both today's projection and a rebuild from 0", async () => {
    const pool = fixture.database.pool
    const end = await appendScenario(fixture.historian)
    await new ProjectionRunner({ store: fixture.store, pool, projections: defaultProjections(), batchSize: 3 }).catchUp()
    const built = await contents(pool)
    expect(built.task_summary).toContainEqual(
      expect.objectContaining({
        task_id: 'task-costly',
        total_tokens: 110 + 1500 + 340,
        total_cost_usd: 0.0093,
        failed_call_cost_usd: 0.0048,
        calls_without_reported_usage: 2,
        estimated_unreported_tokens: 1400,
        estimated_unreported_cost_usd: 0.00325,
      }),
    )

    await rowsOfTheOlderBuild(pool)
    await migrateSchema(pool, 'up')
    expect(await contents(pool)).toEqual(built)
    const compared = await rebuildAndCompare(fixture.store, pool, defaultProjections())
    expect(compared.differences).toEqual([])
    expect(compared.positions.task_summary).toBe(end)
  })

  it('without the log in the database (EventStoreDB), reads existing rows as the upcasters read v1 events', async () => {
    const pool = fixture.database.pool
    await appendScenario(fixture.historian)
    await new ProjectionRunner({ store: fixture.store, pool, projections: defaultProjections() }).catchUp()
    await rowsOfTheOlderBuild(pool)
    await pool.query('delete from events')
    await migrateSchema(pool, 'up')

    const failed = await pool.query(
      `select event_type, input_tokens, output_tokens, cost_usd::text as cost_usd, usage_reported from audit_timeline where event_type like '%ModelFailed' order by position`,
    )
    expect(failed.rows).toEqual(Array.from({ length: 4 }, (_, i) => ({ event_type: i === 1 ? 'PlanningModelFailed' : 'RoutingModelFailed', input_tokens: 0, output_tokens: 0, cost_usd: '0', usage_reported: false })))
    const invoked = await pool.query(`select distinct usage_reported from audit_timeline where event_type in ('RoutingModelInvoked', 'PlanCreated', 'SynthesisModelInvoked')`)
    expect(invoked.rows).toEqual([{ usage_reported: true }])
    const analytics = await pool.query(`select outcome, usage_reported, count(*)::integer as calls from analytics_model_invocations group by 1, 2 order by 1`)
    expect(analytics.rows).toEqual([
      { outcome: 'failed', usage_reported: false, calls: 4 },
      { outcome: 'ok', usage_reported: true, calls: 3 },
    ])
    const summaries = await pool.query(
      `select task_id, total_tokens::integer as total_tokens, failed_call_cost_usd::text as failed, calls_without_reported_usage as unreported,
              estimated_unreported_tokens::integer as estimated
         from task_summary order by task_id`,
    )
    expect(summaries.rows).toEqual([
      { task_id: 'task-bad', total_tokens: 0, failed: '0', unreported: 2, estimated: 0 },
      { task_id: 'task-costly', total_tokens: 950, failed: '0', unreported: 2, estimated: 0 },
    ])
  })
})
