import type pg from 'pg'
import { describe, expect, it, vi } from 'vitest'
import type { AnnalistEvent } from '../../historian/events'
import type { Historian, PendingEvent } from '../../historian/historian'
import { InvalidIdentifierError } from '../../historian/streams'
import { analyticsProjection } from '../../projections/analytics/projection'
import { costPerTenantPerDay, failuresByStep, modelInvocationStats, tenantsWithFailures, toolUsage } from '../../projections/analytics/query'
import { liveTables } from '../../projections/projection'
import { InvalidQueryError } from '../../projections/queryFilters'
import { rebuildAndCompare } from '../../projections/rebuild'
import { ProjectionRunner } from '../../projections/runner'
import { toStoredEvent } from '../../historian/historian'
import { DATABASE_BACKENDS, historianPerTest } from '../support/databases'
import { appendTaskEvents, FACTORY_MODELS, TaskEventFactory } from '../../dev/fixtures/eventFactory'

const ANALYTICS_TABLES = ['analytics_model_invocations', 'analytics_step_failures', 'analytics_tool_calls'] as const
type AnalyticsTable = (typeof ANALYTICS_TABLES)[number]

/** The same pending event with some data fields replaced (latencies, usage, codes), so figures can be hand-computed. */
function patched(pending: PendingEvent, data: Record<string, unknown>): PendingEvent {
  return { ...pending, event: { ...pending.event, data: { ...pending.event.data, ...data } } as AnnalistEvent }
}

const usage = (inputTokens: number, outputTokens: number, costUsd: number) => ({ inputTokens, outputTokens, costUsd })

/** A task's events, one second apart from `startAt`, built by `events` from the task's factory. */
async function appendTask(historian: Historian, tenantId: string, taskId: string, startAt: string, events: (f: TaskEventFactory) => PendingEvent[]): Promise<bigint> {
  const factory = new TaskEventFactory(tenantId, taskId, new Date(startAt))
  return (await appendTaskEvents(historian, tenantId, taskId, events(factory))).position
}

async function tableContents(pool: pg.Pool, table: AnalyticsTable): Promise<Record<string, unknown>[]> {
  const result = await pool.query<{ row: Record<string, unknown> }>(`select to_jsonb(t) as row from ${table} t order by position`)
  return result.rows.map((r) => r.row)
}

async function allContents(pool: pg.Pool): Promise<Record<AnalyticsTable, Record<string, unknown>[]>> {
  const entries = await Promise.all(ANALYTICS_TABLES.map(async (table) => [table, await tableContents(pool, table)] as const))
  return Object.fromEntries(entries) as Record<AnalyticsTable, Record<string, unknown>[]>
}

/** Facts without their positions (which depend on the store), for comparing with hand-written rows. */
const withoutPosition = (rows: Record<string, unknown>[]) => rows.map(({ position: _position, ...rest }) => rest)

/** Rows with occurred_at as ISO 8601 in UTC, whatever the session's time zone. */
const utc = (rows: Record<string, unknown>[]) => rows.map((row) => ({ ...row, occurred_at: new Date(String(row.occurred_at)).toISOString() }))

/** A task that recovers from a failed tool call and a failed synthesis attempt (8 events, default figures). */
function recoveringTask(f: TaskEventFactory): PendingEvent[] {
  return [
    f.received(),
    f.routingInvoked('research'),
    f.planCreated(['search', 'fetch']),
    f.toolExecuted('call-1', 'search'),
    f.toolFailed('call-2', 'fetch'),
    f.synthesisFailed(true, 1),
    f.synthesisInvoked(),
    f.completed({ totalTokens: 1010, totalCostUsd: 0.012, toolCallsSucceeded: 1, toolCallsFailed: 1 }),
  ]
}

const NOW = new Date('2026-03-10T12:00:00.000Z')

/**
 * The failure scenario, around a 24-hour window ending at NOW: alpha's route failures straddle the window's start,
 * beta's synthesis failure happens exactly at NOW (excluded), gamma recovers from a failed synthesis attempt and a failed
 * tool call, and two of delta's tasks give up at synthesis on a context-length error.
 */
async function appendFailureScenario(historian: Historian): Promise<void> {
  const contextLength = { errorCode: 'MODEL_CONTEXT_LENGTH_EXCEEDED', message: 'context window exceeded' }
  await appendTask(historian, 'alpha', 'a1', '2026-03-09T11:59:58Z', (f) => [f.received(), f.routingFailed(true, 1), f.routingFailed(false, 2), f.failed('route', 'MODEL_TIMEOUT')])
  await appendTask(historian, 'beta', 'b1', '2026-03-10T11:59:59Z', (f) => [f.received(), f.synthesisFailed(false, 1), f.failed('synthesize', 'MODEL_PROVIDER_ERROR')])
  await appendTask(historian, 'gamma', 'g1', '2026-03-10T08:00:00Z', recoveringTask)
  for (const [taskId, startAt] of [['d1', '2026-03-10T09:00:00Z'], ['d2', '2026-03-10T10:00:00Z']] as const) {
    await appendTask(historian, 'delta', taskId, startAt, (f) => [f.received(), patched(f.synthesisFailed(false, 1), contextLength), f.failed('synthesize', 'MODEL_CONTEXT_LENGTH_EXCEEDED')])
  }
}

/**
 * The usage scenario, inside a 30-day window ending at NOW except for t4: latencies, tokens and costs chosen so that
 * every percentile and sum below can be worked out by hand. t2's routing call lands on the next UTC day.
 */
async function appendUsageScenario(historian: Historian): Promise<void> {
  await appendTask(historian, 'alpha', 't1', '2026-03-01T10:00:00Z', (f) => [
    f.received(),
    patched(f.routingInvoked('research', usage(100, 10, 0.001)), { latencyMs: 100 }),
    f.planCreated(['search', 'fetch']), // 250.5 ms, 300/40 tokens, $0.0034
    f.toolExecuted('call-1', 'search'), // 42 ms
    f.toolFailed('call-2', 'fetch'), // 5,000 ms
    f.synthesisInvoked(undefined, usage(500, 60, 0.0075)), // 900 ms
    f.completed({ totalTokens: 1010, totalCostUsd: 0.0119, toolCallsSucceeded: 1, toolCallsFailed: 1 }),
  ])
  await appendTask(historian, 'alpha', 't2', '2026-03-02T23:59:59Z', (f) => [
    f.received(),
    patched(f.routingInvoked('research', usage(200, 20, 0.002)), { latencyMs: 200, model: { ...FACTORY_MODELS.routing, modelVersion: '2026-03' } }),
    f.planningFailed(false, 1), // 80 ms
    f.failed('plan', 'MODEL_OUTPUT_MALFORMED'),
  ])
  await appendTask(historian, 'beta', 't3', '2026-03-05T08:00:00Z', (f) => [
    f.received(),
    patched(f.routingFailed(true, 1), { latencyMs: 500 }),
    patched(f.routingInvoked('calculation', usage(300, 30, 0.003)), { latencyMs: 300 }),
    patched(f.planCreated(['search'], usage(100, 10, 0.0005)), { latencyMs: 150 }),
    patched(f.toolExecuted('call-1', 'search'), { latencyMs: 58 }),
    patched(f.synthesisInvoked(undefined, usage(400, 40, 0.004)), { latencyMs: 700 }),
    f.completed({ totalTokens: 880, totalCostUsd: 0.0075, toolCallsSucceeded: 1, toolCallsFailed: 0 }),
  ])
  await appendTask(historian, 'beta', 't4', '2026-02-01T00:00:00Z', (f) => [
    f.received(),
    patched(f.routingInvoked('research', usage(1000, 100, 0.1)), { latencyMs: 9_999 }),
    patched(f.toolExecuted('call-1', 'search'), { latencyMs: 1 }),
  ])
}

/** A failed call the provider billed: a malformed reply, fully generated. */
const BILLED_FAILURE = { inputTokens: 1200, outputTokens: 300, costUsd: 0.0048, reported: true }
/** A timed-out call: no usage reported; the prompt's 900 tokens, priced, as a flagged estimate. */
const TIMED_OUT = { inputTokens: 900, outputTokens: 0, costUsd: 0.00225, reported: false }

/**
 * Failed calls that cost money. e1 (8 March): routing times out (estimated), then routes; planning returns a malformed
 * reply (billed), then plans; synthesis answers. e2 (9 March): the synthesis call fails after the provider billed it.
 */
async function appendFailedCallCostScenario(historian: Historian): Promise<bigint> {
  await appendTask(historian, 'epsilon', 'e1', '2026-03-08T10:00:00Z', (f) => [
    f.received(),
    f.routingFailed(true, 1, TIMED_OUT),
    f.routingInvoked('research', usage(100, 10, 0.001)),
    f.planningFailed(true, 1, BILLED_FAILURE),
    f.planCreated(['search'], usage(300, 40, 0.0034)),
    f.synthesisInvoked(undefined, usage(500, 60, 0.0075)),
  ])
  return appendTask(historian, 'epsilon', 'e2', '2026-03-09T10:00:00Z', (f) => [
    f.received(),
    f.synthesisFailed(false, 1, { inputTokens: 800, outputTokens: 50, costUsd: 0.002, reported: true }),
    f.failed('synthesize', 'MODEL_PROVIDER_ERROR'),
  ])
}

describe.each(DATABASE_BACKENDS)('analytics read model on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const runner = (batchSize = 100) => new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: [analyticsProjection()], batchSize })

  it('records model invocations, step failures and tool calls from the events, and nothing else', async () => {
    const end = await appendTask(fixture.historian, 'gamma', 'g1', '2026-03-10T08:00:00Z', recoveringTask)
    await appendTask(fixture.historian, 'delta', 'd1', '2026-03-10T09:00:00Z', (f) => [f.received(), f.synthesisFailed(false, 2), f.failed('synthesize', 'MODEL_PROVIDER_ERROR')])
    await runner().catchUp()
    const tables = await allContents(fixture.database.pool)
    const first = end - 7n

    const invocation = (step: string, model: (typeof FACTORY_MODELS)[keyof typeof FACTORY_MODELS], template: string, rest: Record<string, unknown>) => ({
      tenant_id: 'gamma',
      task_id: 'g1',
      step,
      attempt: 1,
      provider: model.provider,
      model_id: model.modelId,
      model_version: model.modelVersion,
      prompt_template_id: template,
      prompt_template_version: '1',
      error_code: null,
      usage_reported: true,
      ...rest,
    })
    expect(tables.analytics_model_invocations[0]!.position).toBe(Number(first + 1n))
    expect(utc(withoutPosition(tables.analytics_model_invocations))).toEqual([
      invocation('route', FACTORY_MODELS.routing, 'route', { outcome: 'ok', latency_ms: 120, input_tokens: 100, output_tokens: 10, cost_usd: 0.0011, occurred_at: '2026-03-10T08:00:01.000Z' }),
      invocation('plan', FACTORY_MODELS.planning, 'plan', { outcome: 'ok', latency_ms: 250.5, input_tokens: 300, output_tokens: 40, cost_usd: 0.0034, occurred_at: '2026-03-10T08:00:02.000Z' }),
      // A failed call's row holds its usage: here none was reported, so the 40 tokens are the prompt's estimate.
      invocation('synthesize', FACTORY_MODELS.synthesis, 'synthesize', {
        outcome: 'failed',
        latency_ms: 15,
        input_tokens: 40,
        output_tokens: 0,
        cost_usd: 0,
        usage_reported: false,
        error_code: 'MODEL_PROVIDER_ERROR',
        occurred_at: '2026-03-10T08:00:05.000Z',
      }),
      invocation('synthesize', FACTORY_MODELS.synthesis, 'synthesize', { outcome: 'ok', latency_ms: 900, input_tokens: 500, output_tokens: 60, cost_usd: 0.0075, occurred_at: '2026-03-10T08:00:06.000Z' }),
      {
        ...invocation('synthesize', FACTORY_MODELS.synthesis, 'synthesize', { outcome: 'failed', latency_ms: 15, input_tokens: 40, output_tokens: 0, cost_usd: 0, usage_reported: false }),
        tenant_id: 'delta',
        task_id: 'd1',
        attempt: 2,
        error_code: 'MODEL_PROVIDER_ERROR',
        occurred_at: '2026-03-10T09:00:01.000Z',
      },
    ])
    // "A synthesis attempt failed" and "the task failed at synthesis" stay apart.
    expect(utc(withoutPosition(tables.analytics_step_failures))).toEqual([
      { tenant_id: 'gamma', task_id: 'g1', step: 'tools', kind: 'tool_call', error_code: 'TOOL_TIMEOUT', attempt: 1, occurred_at: '2026-03-10T08:00:04.000Z' },
      { tenant_id: 'gamma', task_id: 'g1', step: 'synthesize', kind: 'model_attempt', error_code: 'MODEL_PROVIDER_ERROR', attempt: 1, occurred_at: '2026-03-10T08:00:05.000Z' },
      { tenant_id: 'delta', task_id: 'd1', step: 'synthesize', kind: 'model_attempt', error_code: 'MODEL_PROVIDER_ERROR', attempt: 2, occurred_at: '2026-03-10T09:00:01.000Z' },
      { tenant_id: 'delta', task_id: 'd1', step: 'synthesize', kind: 'task', error_code: 'MODEL_PROVIDER_ERROR', attempt: 1, occurred_at: '2026-03-10T09:00:02.000Z' },
    ])
    expect(utc(tables.analytics_tool_calls)).toEqual([
      { position: Number(first + 3n), tenant_id: 'gamma', task_id: 'g1', tool_name: 'search', outcome: 'ok', error_code: null, latency_ms: 42, occurred_at: '2026-03-10T08:00:03.000Z' },
      { position: Number(first + 4n), tenant_id: 'gamma', task_id: 'g1', tool_name: 'fetch', outcome: 'failed', error_code: 'TOOL_TIMEOUT', latency_ms: 5000, occurred_at: '2026-03-10T08:00:04.000Z' },
    ])
  })

  it('applying every event twice changes nothing, and a rebuild from 0 gives identical rows', async () => {
    await appendFailureScenario(fixture.historian)
    await appendUsageScenario(fixture.historian)
    await runner(3).catchUp()
    const built = await allContents(fixture.database.pool)
    expect(built.analytics_model_invocations).toHaveLength(19)
    expect(built.analytics_step_failures).toHaveLength(15)
    expect(built.analytics_tool_calls).toHaveLength(6)

    // Every event applied again, straight through the projection, in one transaction.
    const projection = analyticsProjection()
    const events = await fixture.store.readAll({})
    const client = await fixture.database.pool.connect()
    try {
      await client.query('begin')
      for (const recorded of events) await projection.apply(client, toStoredEvent(recorded), liveTables(projection))
      await client.query('commit')
    } finally {
      client.release()
    }
    expect(await allContents(fixture.database.pool)).toEqual(built)

    // From the middle of the log, and from 0 into emptied tables, in another batch size.
    await fixture.database.pool.query(`update projection_checkpoints set position = $1 where name = 'analytics'`, [events[10]!.position.toString()])
    await runner(7).catchUp()
    expect(await allContents(fixture.database.pool)).toEqual(built)
    await fixture.database.pool.query(`truncate ${ANALYTICS_TABLES.join(', ')}`)
    await fixture.database.pool.query(`update projection_checkpoints set position = 0 where name = 'analytics'`)
    await runner(100).catchUp()
    expect(await allContents(fixture.database.pool)).toEqual(built)
  })

  it('answers "which tenants had synthesis failures in the last 24 hours", by kind, with closed-open window edges', async () => {
    await appendFailureScenario(fixture.historian)
    await runner().catchUp()
    const pool = fixture.database.pool

    expect(await tenantsWithFailures(pool, { step: 'synthesize' }, NOW)).toEqual([
      { tenantId: 'delta', failures: 4, tasks: 2, lastFailedAt: new Date('2026-03-10T10:00:02Z') },
      { tenantId: 'gamma', failures: 1, tasks: 1, lastFailedAt: new Date('2026-03-10T08:00:05Z') },
    ])
    expect(await tenantsWithFailures(pool, { step: 'synthesize', kind: 'task' }, NOW)).toEqual([
      { tenantId: 'delta', failures: 2, tasks: 2, lastFailedAt: new Date('2026-03-10T10:00:02Z') },
    ])
    expect(await tenantsWithFailures(pool, { step: 'synthesize', kind: 'attempt' }, NOW)).toEqual([
      { tenantId: 'delta', failures: 2, tasks: 2, lastFailedAt: new Date('2026-03-10T10:00:01Z') },
      { tenantId: 'gamma', failures: 1, tasks: 1, lastFailedAt: new Date('2026-03-10T08:00:05Z') },
    ])
    // beta failed exactly at NOW: outside [now - 24h, now), inside once `to` moves one second on.
    const later = await tenantsWithFailures(pool, { step: 'synthesize', to: '2026-03-10T12:00:01Z' }, NOW)
    expect(later.map((row) => [row.tenantId, row.failures])).toEqual([
      ['beta', 1],
      ['delta', 4],
      ['gamma', 1],
    ])
    expect(await tenantsWithFailures(pool, { step: 'plan' }, NOW)).toEqual([])
  })

  it('counts failures by tenant, step and error code, and honours each filter', async () => {
    await appendFailureScenario(fixture.historian)
    await runner().catchUp()
    const pool = fixture.database.pool

    expect(await failuresByStep(pool, {}, NOW)).toEqual([
      // alpha's first attempt failed one second before the window; its second exactly at the window's start counts.
      { tenantId: 'alpha', step: 'route', errorCode: 'MODEL_TIMEOUT', failures: 2, attemptFailures: 1, taskFailures: 1, tasks: 1, lastFailedAt: new Date('2026-03-09T12:00:01Z') },
      {
        tenantId: 'delta',
        step: 'synthesize',
        errorCode: 'MODEL_CONTEXT_LENGTH_EXCEEDED',
        failures: 4,
        attemptFailures: 2,
        taskFailures: 2,
        tasks: 2,
        lastFailedAt: new Date('2026-03-10T10:00:02Z'),
      },
      { tenantId: 'gamma', step: 'tools', errorCode: 'TOOL_TIMEOUT', failures: 1, attemptFailures: 1, taskFailures: 0, tasks: 1, lastFailedAt: new Date('2026-03-10T08:00:04Z') },
      { tenantId: 'gamma', step: 'synthesize', errorCode: 'MODEL_PROVIDER_ERROR', failures: 1, attemptFailures: 1, taskFailures: 0, tasks: 1, lastFailedAt: new Date('2026-03-10T08:00:05Z') },
    ])
    const keys = (rows: { tenantId: string; step: string; failures: number }[]) => rows.map((row) => `${row.tenantId}/${row.step}/${row.failures}`)
    expect(keys(await failuresByStep(pool, { step: 'synthesize', errorCode: 'MODEL_PROVIDER_ERROR' }, NOW))).toEqual(['gamma/synthesize/1'])
    expect(keys(await failuresByStep(pool, { kind: 'task' }, NOW))).toEqual(['alpha/route/1', 'delta/synthesize/2'])
    expect(keys(await failuresByStep(pool, { tenantId: 'alpha', from: '2026-03-09T11:59:59Z' }, NOW))).toEqual(['alpha/route/3'])
    expect(keys(await failuresByStep(pool, { tenantId: 'alpha', from: '2026-03-09T12:00:02Z' }, NOW))).toEqual([])
    expect(keys(await failuresByStep(pool, { tenantId: 'nobody' }, NOW))).toEqual([])
  })

  it('reports model invocations per model version with p50 and p99 latency, tokens and cost', async () => {
    await appendUsageScenario(fixture.historian)
    await runner().catchUp()
    const pool = fixture.database.pool
    const stats = await modelInvocationStats(pool, {}, NOW)
    const model = (modelId: string, modelVersion: string) => ({ provider: 'scripted', modelId, modelVersion })
    // Each failed call here reported no usage: counted, its 40-token estimate (priced at 0) apart from the figures.
    const unreported = { failedCallCostUsd: 0, callsWithoutReportedUsage: 1, estimatedUnreportedTokens: 40, estimatedUnreportedCostUsd: 0 }
    const allReported = { failedCallCostUsd: 0, callsWithoutReportedUsage: 0, estimatedUnreportedTokens: 0, estimatedUnreportedCostUsd: 0 }
    expect(stats.map(({ latencyP50Ms: _p50, latencyP99Ms: _p99, ...rest }) => rest)).toEqual([
      { ...model('scripted-planner', '2026-01'), invocations: 3, failures: 1, inputTokens: 400, outputTokens: 50, costUsd: 0.0039, ...unreported },
      { ...model('scripted-router', '2026-01'), invocations: 3, failures: 1, inputTokens: 400, outputTokens: 40, costUsd: 0.004, ...unreported },
      { ...model('scripted-router', '2026-03'), invocations: 1, failures: 0, inputTokens: 200, outputTokens: 20, costUsd: 0.002, ...allReported },
      { ...model('scripted-writer', '2026-02'), invocations: 2, failures: 0, inputTokens: 900, outputTokens: 100, costUsd: 0.0115, ...allReported },
    ])
    // percentile_cont interpolates: over sorted [a0..an-1], p sits at index p*(n-1).
    const latencies = stats.map((row) => [row.latencyP50Ms, row.latencyP99Ms])
    const expected = [
      [150, 150 + 0.98 * (250.5 - 150)], // planner [80, 150, 250.5]
      [300, 300 + 0.98 * (500 - 300)], // router 2026-01 [100, 300, 500 (failed)]
      [200, 200], // router 2026-03 [200]
      [800, 700 + 0.99 * (900 - 700)], // writer [700, 900]
    ]
    latencies.forEach(([p50, p99], index) => {
      expect(p50).toBeCloseTo(expected[index]![0]!, 9)
      expect(p99).toBeCloseTo(expected[index]![1]!, 9)
    })

    const beta = await modelInvocationStats(pool, { tenantId: 'beta' }, NOW)
    expect(beta.map((row) => [row.modelId, row.invocations, row.latencyP50Ms])).toEqual([
      ['scripted-planner', 1, 150],
      ['scripted-router', 2, 400],
      ['scripted-writer', 1, 700],
    ])
    expect(beta[1]!.latencyP99Ms).toBeCloseTo(300 + 0.99 * 200, 9)
    // t4 (2026-02-01) is outside the default 30 days and inside an explicit window.
    const older = await modelInvocationStats(pool, { tenantId: 'beta', from: '2026-02-01', to: '2026-02-02' }, NOW)
    expect(older).toEqual([
      { ...model('scripted-router', '2026-01'), invocations: 1, failures: 0, latencyP50Ms: 9_999, latencyP99Ms: 9_999, inputTokens: 1000, outputTokens: 100, costUsd: 0.1, ...allReported },
    ])
  })

  it('shows what failed calls cost next to the reported figures, and unreported usage as a flagged estimate apart', async () => {
    const end = await appendFailedCallCostScenario(fixture.historian)
    await runner(2).catchUp()
    const pool = fixture.database.pool
    const window = { from: '2026-03-01' }

    const stats = await modelInvocationStats(pool, window, NOW)
    const model = (modelId: string, modelVersion: string) => ({ provider: 'scripted', modelId, modelVersion })
    expect(stats.map(({ latencyP50Ms: _p50, latencyP99Ms: _p99, ...rest }) => rest)).toEqual([
      // The malformed reply's tokens and cost are in the figures, and its cost is the failed calls' part.
      {
        ...model('scripted-planner', '2026-01'),
        invocations: 2,
        failures: 1,
        inputTokens: 1500,
        outputTokens: 340,
        costUsd: 0.0082,
        failedCallCostUsd: 0.0048,
        callsWithoutReportedUsage: 0,
        estimatedUnreportedTokens: 0,
        estimatedUnreportedCostUsd: 0,
      },
      // The timeout reported nothing: counted, its estimate apart, not in the figures.
      {
        ...model('scripted-router', '2026-01'),
        invocations: 2,
        failures: 1,
        inputTokens: 100,
        outputTokens: 10,
        costUsd: 0.001,
        failedCallCostUsd: 0,
        callsWithoutReportedUsage: 1,
        estimatedUnreportedTokens: 900,
        estimatedUnreportedCostUsd: 0.00225,
      },
      {
        ...model('scripted-writer', '2026-02'),
        invocations: 2,
        failures: 1,
        inputTokens: 1300,
        outputTokens: 110,
        costUsd: 0.0095,
        failedCallCostUsd: 0.002,
        callsWithoutReportedUsage: 0,
        estimatedUnreportedTokens: 0,
        estimatedUnreportedCostUsd: 0,
      },
    ])
    // Latency percentiles still run over every call, failed ones included: the router's [120, 30,000].
    expect(stats[1]!.latencyP50Ms).toBeCloseTo((120 + 30_000) / 2, 9)

    expect(await costPerTenantPerDay(pool, window, NOW)).toEqual([
      { tenantId: 'epsilon', day: '2026-03-08', costUsd: 0.0167, failedCallCostUsd: 0.0048, estimatedUnreportedCostUsd: 0.00225, tokens: 2510, tasks: 1 },
      { tenantId: 'epsilon', day: '2026-03-09', costUsd: 0.002, failedCallCostUsd: 0.002, estimatedUnreportedCostUsd: 0, tokens: 850, tasks: 1 },
    ])

    // Applying every event again changes nothing; a rebuild from 0 equals the live tables.
    const built = await allContents(pool)
    await pool.query(`update projection_checkpoints set position = 0 where name = 'analytics'`)
    await runner(1).catchUp()
    expect(await allContents(pool)).toEqual(built)
    expect(await rebuildAndCompare(fixture.store, pool, [analyticsProjection()])).toEqual({ matches: true, differences: [], positions: { analytics: end } })
  })

  it('sums cost and tokens per tenant per UTC day', async () => {
    await appendUsageScenario(fixture.historian)
    await runner().catchUp()
    const pool = fixture.database.pool
    const none = { failedCallCostUsd: 0, estimatedUnreportedCostUsd: 0 }
    expect(await costPerTenantPerDay(pool, {}, NOW)).toEqual([
      { tenantId: 'alpha', day: '2026-03-01', costUsd: 0.0119, ...none, tokens: 1010, tasks: 1 },
      // t2 was received at 23:59:59 on 2 March; its model calls ran on 3 March (UTC). Its failed call's estimate is not in `tokens`.
      { tenantId: 'alpha', day: '2026-03-03', costUsd: 0.002, ...none, tokens: 220, tasks: 1 },
      { tenantId: 'beta', day: '2026-03-05', costUsd: 0.0075, ...none, tokens: 880, tasks: 1 },
    ])
    expect(await costPerTenantPerDay(pool, { tenantId: 'beta', from: '2026-01-01' }, NOW)).toEqual([
      { tenantId: 'beta', day: '2026-02-01', costUsd: 0.1, ...none, tokens: 1100, tasks: 1 },
      { tenantId: 'beta', day: '2026-03-05', costUsd: 0.0075, ...none, tokens: 880, tasks: 1 },
    ])
    expect(await costPerTenantPerDay(pool, { from: '2026-03-02', to: '2026-03-03' }, NOW)).toEqual([])
  })

  it('reports tool calls, failures, failure rate and median latency per tool', async () => {
    await appendUsageScenario(fixture.historian)
    await runner().catchUp()
    const pool = fixture.database.pool
    expect(await toolUsage(pool, {}, NOW)).toEqual([
      { toolName: 'fetch', calls: 1, failures: 1, failureRate: 1, latencyP50Ms: 5_000 },
      { toolName: 'search', calls: 2, failures: 0, failureRate: 0, latencyP50Ms: 50 },
    ])
    expect(await toolUsage(pool, { from: '2026-01-01' }, NOW)).toEqual([
      { toolName: 'fetch', calls: 1, failures: 1, failureRate: 1, latencyP50Ms: 5_000 },
      { toolName: 'search', calls: 3, failures: 0, failureRate: 0, latencyP50Ms: 42 },
    ])
    expect(await toolUsage(pool, { tenantId: 'beta', from: '2026-01-01' }, NOW)).toEqual([{ toolName: 'search', calls: 2, failures: 0, failureRate: 0, latencyP50Ms: 29.5 }])
  })

  it('rejects bad filters with a clear error before any SQL runs', async () => {
    const pool = fixture.database.pool
    const query = vi.spyOn(pool, 'query')
    const invalid = async (run: () => Promise<unknown>, filter: string, reason: RegExp) => {
      const error = await run().then(
        () => undefined,
        (rejected: unknown) => rejected,
      )
      expect(error).toBeInstanceOf(InvalidQueryError)
      expect(error).toMatchObject({ filter, reason: expect.stringMatching(reason) })
    }
    await invalid(() => failuresByStep(pool, { step: 'synthesis' as never }, NOW), 'step', /"synthesis" is not one of route, plan, tools, synthesize/)
    await invalid(() => failuresByStep(pool, { errorCode: "x' or 1=1 --" }, NOW), 'errorCode', /must be 1 to 128 characters/)
    await invalid(() => tenantsWithFailures(pool, { step: 'synthesize', kind: 'some' as never }, NOW), 'kind', /not one of task, attempt, any/)
    await invalid(() => tenantsWithFailures(pool, {} as never, NOW), 'step', /undefined is not one of/)
    await invalid(() => modelInvocationStats(pool, { from: 'yesterday' }, NOW), 'from', /not an ISO 8601 date/)
    await invalid(() => costPerTenantPerDay(pool, { from: '2026-03-10', to: '2026-03-01' }, NOW), 'time range', /is not before/)
    await invalid(() => toolUsage(pool, { from: '2000-01-01', to: '2099-01-01' }, NOW), 'time range', /wider than the 3660-day maximum/)
    await expect(toolUsage(pool, { tenantId: 'Bad-Tenant' }, NOW)).rejects.toThrow(InvalidIdentifierError)
    await expect(failuresByStep(pool, { tenantId: "acme' or '1'='1" }, NOW)).rejects.toThrow(InvalidIdentifierError)
    expect(query).not.toHaveBeenCalled()
    query.mockRestore()
  })
})
