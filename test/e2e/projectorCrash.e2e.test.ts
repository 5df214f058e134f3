import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { seededRandom } from '../../dev/chaos/seededRandom'
import { SupervisedProcess } from '../../dev/supervisor/supervisedProcess'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { defaultProjections } from '../../projections/defaultProjections'
import { listDeadLetters } from '../../projections/projectionDeadLetters'
import { rebuildAndCompare } from '../../projections/rebuild'
import { randomKeyRing } from '../support/databases'
import { servedDatabase, type ServedDatabase } from '../support/supervisedWorker'
import { appendTaskRuns } from '../../dev/fixtures/taskRuns'
import { waitUntil } from '../support/waitUntil'

/**
 * SIGKILLs a real `annalist projector` process mid-stream, several times at seeded-random moments, lets its supervisor
 * restart it, and checks that the read models it leaves are exactly what a rebuild from position 0 gives.
 */
describe.each(['postgres server', 'embedded PGlite'] as const)('projector SIGKILL and restart (%s)', (kind) => {
  const projections = defaultProjections()
  const names = projections.map((projection) => projection.name)
  let database: Database & { url: string }
  let served: ServedDatabase | undefined
  let store: PostgresEventStore
  let projector: SupervisedProcess
  let workDir: string

  beforeAll(async () => {
    workDir = mkdtempSync(path.join(tmpdir(), 'annalist-projector-'))
    served = await servedDatabase(kind, workDir)
    database = served.database
    store = new PostgresEventStore(database)
  })
  afterAll(async () => {
    await projector?.stop()
    await store?.close()
    await served?.close()
  })

  it('leaves read models equal to a rebuild, with no dead letters, however often it is killed', async () => {
    const historian = new Historian(store, { keyRing: randomKeyRing() })
    const firstWave = await appendTaskRuns(historian, { tenants: 4, events: 2_800 })
    const checkpoints = async () => {
      const result = await database.pool.query<{ position: string }>(`select position from projection_checkpoints where name = any($1::text[])`, [names])
      const committed = result.rows.map((row) => BigInt(row.position))
      return [...committed, ...names.slice(committed.length).map(() => 0n)]
    }
    const lowest = async () => (await checkpoints()).reduce((low, at) => (at < low ? at : low))
    const highest = async () => (await checkpoints()).reduce((high, at) => (at > high ? at : high))

    projector = new SupervisedProcess('projector', ['projector', '--batch-size', '20'], { ...process.env, DATABASE_URL: database.url }, path.join(workDir, 'projector.log'), 100)
    projector.start()
    const random = seededRandom(20_260_204)
    const killedAt: bigint[] = []
    let floor = 0n
    for (let kill = 0; kill < 4; kill++) {
      // A random point in what is left of the first wave, so each kill lands while the projector is busy.
      const left = Number(firstWave - floor)
      const threshold = floor + BigInt(Math.floor(left * (0.1 + random() * 0.3)))
      await waitUntil(`a checkpoint past ${threshold}`, async () => (await highest()) >= threshold, { timeoutMs: 60_000, intervalMs: 10 })
      expect(projector.kill('SIGKILL')).toBeGreaterThan(0)
      const at = await highest()
      killedAt.push(at)
      floor = at
      // Wait for the supervisor's restart before the next kill.
      await waitUntil('the restart', () => projector.pid !== undefined, { intervalMs: 10 })
    }
    const more = await appendTaskRuns(historian, { tenants: 2, events: 140, prefix: 'wave' })
    await waitUntil(`every checkpoint at ${more}`, async () => (await lowest()) === more, { timeoutMs: 120_000, intervalMs: 10 })
    await projector.stop()

    expect(projector.unplannedExits.map((exit) => exit.signal)).toEqual(['SIGKILL', 'SIGKILL', 'SIGKILL', 'SIGKILL'])
    // The kills really landed mid-stream: the projector had not yet caught up with the first wave.
    expect(killedAt.some((at) => at < firstWave)).toBe(true)
    for (const at of killedAt) expect(at).toBeLessThan(firstWave)
    expect(await listDeadLetters(database.pool)).toEqual([])
    const comparison = await rebuildAndCompare(store, database.pool, projections)
    expect(comparison.differences).toEqual([])
    expect(comparison.matches).toBe(true)
    expect(comparison.positions).toEqual(Object.fromEntries(names.map((name) => [name, more])))
    const rows = await database.pool.query<{ n: string }>('select count(*) as n from audit_timeline')
    expect(Number(rows.rows[0]!.n)).toBe(2_800 + 140)
  })
})
