import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { analyticsProjection } from '../../projections/analytics/projection'
import { ProjectionRunner } from '../../projections/runner'
import { freshPostgresDatabase, randomKeyRing } from '../support/databases'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'
import { runAnnalist } from '../support/runCli'

const WINDOW = ['--from', '2026-03-09T12:00:00Z', '--to', '2026-03-10T12:00:00Z']

describe('annalist analytics on a PostgreSQL server', () => {
  let database: Database & { url: string }
  const analytics = (args: string[]) => runAnnalist(['analytics', ...args], { DATABASE_URL: database.url })

  beforeAll(async () => {
    database = await freshPostgresDatabase()
    const store = new PostgresEventStore(database)
    const historian = new Historian(store, { keyRing: randomKeyRing() })
    const task = async (tenantId: string, taskId: string, startAt: string, events: (f: TaskEventFactory) => Parameters<typeof appendTaskEvents>[3]) =>
      appendTaskEvents(historian, tenantId, taskId, events(new TaskEventFactory(tenantId, taskId, new Date(startAt))))
    // globex: a synthesis attempt fails after the provider billed it (1,200 + 300 tokens, $0.0048), the retry succeeds.
    // acme: two tasks give up at synthesis, the provider reporting no usage. initech: before the window.
    const billed = { inputTokens: 1200, outputTokens: 300, costUsd: 0.0048, reported: true }
    await task('globex', 'g1', '2026-03-10T08:00:00Z', (f) => [f.received(), f.synthesisFailed(true, 1, billed), f.synthesisInvoked()])
    await task('acme', 'a1', '2026-03-10T09:00:00Z', (f) => [f.received(), f.synthesisFailed(false, 1), f.failed('synthesize', 'MODEL_PROVIDER_ERROR')])
    await task('acme', 'a2', '2026-03-10T10:00:00Z', (f) => [f.received(), f.synthesisFailed(false, 1), f.failed('synthesize', 'MODEL_PROVIDER_ERROR')])
    await task('initech', 'i1', '2026-03-09T11:00:00Z', (f) => [f.received(), f.synthesisFailed(false, 1), f.failed('synthesize', 'MODEL_PROVIDER_ERROR')])
    await new ProjectionRunner({ store, pool: database.pool, projections: [analyticsProjection()] }).catchUp()
    await store.close()
  })
  afterAll(async () => {
    await database?.close()
  })

  it('prints failures by tenant, step and error code as CSV', async () => {
    const result = await analytics(['failures', ...WINDOW, '--format', 'csv'])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout.trimEnd().split('\n')).toEqual([
      'tenant,step,error code,failures,attempts failed,tasks failed,tasks,last failed at',
      'acme,synthesize,MODEL_PROVIDER_ERROR,4,2,2,2,2026-03-10T10:00:02.000Z',
      'globex,synthesize,MODEL_PROVIDER_ERROR,1,1,0,1,2026-03-10T08:00:01.000Z',
    ])
  })

  it('narrows by kind and tenant, and prints JSON', async () => {
    const tasks = await analytics(['failures', ...WINDOW, '--step', 'synthesize', '--kind', 'task', '--format', 'csv'])
    expect(tasks.stdout.trimEnd().split('\n').slice(1)).toEqual(['acme,synthesize,MODEL_PROVIDER_ERROR,2,0,2,2,2026-03-10T10:00:02.000Z'])
    const json = await analytics(['failures', ...WINDOW, '--tenant', 'globex', '--format', 'json'])
    expect(JSON.parse(json.stdout)).toEqual([
      { tenantId: 'globex', step: 'synthesize', errorCode: 'MODEL_PROVIDER_ERROR', failures: 1, attemptFailures: 1, taskFailures: 0, tasks: 1, lastFailedAt: '2026-03-10T08:00:01.000Z' },
    ])
    // The writer's calls in the window: three failed (15 ms each) and one answer (900 ms).
    const models = await analytics(['models', ...WINDOW, '--format', 'json'])
    const [writer, ...others] = JSON.parse(models.stdout) as Record<string, unknown>[]
    expect(others).toEqual([])
    // globex's billed failure is in the reported figures and is their failed calls' part; acme's two failed calls
    // reported nothing: their 40-token estimates are counted apart.
    expect(writer).toMatchObject({
      modelId: 'scripted-writer',
      invocations: 4,
      failures: 3,
      latencyP50Ms: 15,
      inputTokens: 1700,
      outputTokens: 360,
      costUsd: 0.0123,
      failedCallCostUsd: 0.0048,
      callsWithoutReportedUsage: 2,
      estimatedUnreportedTokens: 80,
      estimatedUnreportedCostUsd: 0,
    })
    expect(writer!.latencyP99Ms).toBeCloseTo(15 + 0.97 * 885, 9)
  })

  it('prints cost per tenant per day with the failed calls\' part and the estimate of unreported usage as CSV', async () => {
    const result = await analytics(['costs', ...WINDOW, '--format', 'csv'])
    expect(result.stderr).toBe('')
    expect(result.stdout.trimEnd().split('\n')).toEqual([
      'tenant,day (UTC),cost usd,failed calls usd,est. unreported usd,tokens,tasks',
      'acme,2026-03-10,0,0,0,0,2',
      'globex,2026-03-10,0.0123,0.0048,0,2060,1',
    ])
  })

  it('refuses bad filters in one line, before opening anything', async () => {
    const step = await analytics(['failures', '--step', 'synthesis'])
    expect(step.code).toBe(1)
    expect(step.stderr.trim()).toBe('annalist: invalid step: "synthesis" is not one of route, plan, tools, synthesize  (run with --verbose for details)')
    const misplaced = await analytics(['tools', '--error-code', 'TOOL_TIMEOUT'])
    expect(misplaced.code).toBe(1)
    expect(misplaced.stderr.trim().split('\n')).toHaveLength(1)
    expect(misplaced.stderr).toMatch(/--error-code applies only to `analytics failures`/)
    const unreachable = await runAnnalist(['analytics', 'failures', '--from', '2026-03-10', '--to', '2026-03-01'], { DATABASE_URL: 'postgres://postgres:postgres@127.0.0.1:1/none' })
    expect(unreachable.stderr.trim()).toMatch(/^annalist: invalid time range: from 2026-03-10T00:00:00.000Z is not before to 2026-03-01T00:00:00.000Z/)
  })
})
