import { DefaultLogger, Runtime } from '@temporalio/worker'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { measureAuditQuerySpeedup } from '../../bench/auditQuerySpeedup'
import type { Database } from '../../historian/adapters/postgres/database'
import { tenantsWithFailures } from '../../projections/analytics/query'
import { freshPostgresDatabase } from '../support/databases'

describe('auditQuerySpeedupVsTemporalScan benchmark', () => {
  let database: Database

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger('ERROR') })
    database = await freshPostgresDatabase()
  })
  afterAll(async () => {
    await database?.close()
  })

  // How much faster the read model answers is the benchmark's figure (`npm run bench -- --only auditQuerySpeedup`), not a test's.
  it('runs real pipelines, and times two answers that agree on the planted tenants', async () => {
    const lines: string[] = []
    const rounds: string[] = []
    const result = await measureAuditQuerySpeedup({
      temporalAddress: inject('temporalAddress'),
      database,
      pipelines: 60,
      tenants: 5,
      rounds: 2,
      readModelQueriesPerRound: 5,
      onProgress: (line) => lines.push(line),
      onRound: (variant, round) => rounds.push(`${variant}:${round}`),
    })
    // Tasks 1, 22 and 43 of 60 fail at synthesis; over 5 tenants they belong to tenants 1, 2 and 3.
    expect(result).toMatchObject({ pipelines: 60, tenants: 5, tasksFailedAtSynthesis: 3, workflowsScanned: 60, store: 'postgres' })
    expect(result.tenantsWithSynthesisFailures).toHaveLength(3)
    expect(result.tenantsWithSynthesisFailures.map((tenant) => tenant.replace(/^aq[a-z0-9]+_/, ''))).toEqual(['t1', 't2', 't3'])
    expect(result.historyEventsScanned).toBeGreaterThan(60 * 10)
    expect(rounds).toEqual(['readModel:0', 'temporalScan:0', 'temporalScan:1', 'readModel:1'])
    expect(lines.at(-1)).toMatch(/^analytics projection caught up at position \d+$/)
    expect(lines).toContainEqual(expect.stringMatching(/^pipelines: 60\/60 started, 60 finished \(57 completed, 3 failed\)/))

    // The read model the benchmark queried holds the same answer, from the failure facts.
    const tenants = await tenantsWithFailures(database.pool, { step: 'synthesize', kind: 'task' })
    expect(tenants.map((row) => [row.tenantId, row.tasks])).toEqual(result.tenantsWithSynthesisFailures.map((tenant) => [tenant, 1]))
  }, 180_000)
})
