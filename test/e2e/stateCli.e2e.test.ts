import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDatabase, type Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { freshPostgresDatabase } from '../support/databases'
import { runAnnalist } from '../support/runCli'
import { loadV1TaskStream, v1NewEvents } from '../support/v1Fixture'

const fixture = loadV1TaskStream()
const task = ['--tenant', 'northwind', '--task', 'invoice-2041']

/**
 * Stores the v1 fixture (so the CLI reads through the upcaster too) and gives each event the store time it would have
 * had: 40 ms after it occurred.
 */
async function storeFixture(database: Database): Promise<Date[]> {
  const store = new PostgresEventStore(database)
  await store.appendToStream(fixture.streamName, v1NewEvents(fixture), { expectedRevision: 'no_stream' })
  await database.pool.query(`update events set recorded_at = (metadata->>'occurredAt')::timestamptz + interval '40 milliseconds' where stream_name = $1`, [fixture.streamName])
  return (await store.readStream(fixture.streamName)).map((event) => event.recordedAt)
}

describe('annalist state on a PostgreSQL server', () => {
  let database: Database & { url: string }
  let recordedAt: Date[]
  const state = (args: string[]) => runAnnalist(['state', ...task, ...args], { DATABASE_URL: database.url })

  beforeAll(async () => {
    database = await freshPostgresDatabase()
    recordedAt = await storeFixture(database)
  })
  afterAll(async () => {
    await database?.close()
  })

  it('prints the task as it stands now', async () => {
    const result = await state([])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const lines = result.stdout.split('\n')
    expect(lines).toContain('task           northwind/invoice-2041  (stream tenant_northwind-invoice-2041)')
    expect(lines).toContain(`as of          revision 7, recorded ${recordedAt[7]!.toISOString()}`)
    expect(lines).toContain('status         completed')
    expect(lines).toContain('route          notification  (offered: research, calculation, notification, account, general)')
    expect(lines).toContain('tool calls     2 planned, 2 finished')
    expect(lines).toContain('model failures 1')
    expect(lines).toContain('tokens         572')
  })

  it('reconstructs the task at a revision and at a time, as JSON', async () => {
    const atRevision = await state(['--at', '2', '--format', 'json'])
    expect(atRevision.code).toBe(0)
    const parsed = JSON.parse(atRevision.stdout) as { revision: string; recordedAt: string; state: Record<string, unknown> }
    expect(parsed).toMatchObject({ tenantId: 'northwind', taskId: 'invoice-2041', streamName: fixture.streamName, revision: '2', recordedAt: recordedAt[2]!.toISOString() })
    expect(parsed.state).toMatchObject({ status: 'running', currentStep: 'plan', route: 'notification', modelAttemptsFailed: 1, eventsApplied: 3 })

    // One millisecond before the plan was recorded, the task had been routed and not yet planned.
    const beforePlan = new Date(recordedAt[3]!.getTime() - 1).toISOString()
    const atTime = await state(['--at', beforePlan, '--format', 'json'])
    expect(atTime.code).toBe(0)
    expect(JSON.parse(atTime.stdout)).toMatchObject({ revision: '2', state: { currentStep: 'plan', toolCalls: [] } })
    const atPlan = await state(['--at', recordedAt[3]!.toISOString()])
    expect(atPlan.stdout).toMatch(/^current step {3}tools$/m)
  })

  it('says clearly when the point lies outside the stream', async () => {
    const beyond = await state(['--at', '8'])
    expect(beyond.code).toBe(1)
    expect(beyond.stderr.trim()).toBe(`annalist: no state of ${fixture.streamName} at revision 8: the stream ends at revision 7  (run with --verbose for details)`)
    const early = await state(['--at', '2026-02-03T00:00:00Z'])
    expect(early.code).toBe(1)
    expect(early.stderr.trim()).toBe(
      `annalist: no state of ${fixture.streamName} at 2026-02-03T00:00:00.000Z: its first event (revision 0) was recorded at ${recordedAt[0]!.toISOString()}  (run with --verbose for details)`,
    )
    const missing = await runAnnalist(['state', '--tenant', 'northwind', '--task', 'invoice-9999'], { DATABASE_URL: database.url })
    expect(missing.stderr).toMatch(/^annalist: task invoice-9999 of tenant northwind has no events/)
  })
})

describe('annalist state checks its input before it opens storage', () => {
  // Nothing listens on port 1: had the command connected, the error would be about the connection.
  const unreachable = { DATABASE_URL: 'postgres://postgres:postgres@127.0.0.1:1/none' }

  it('names a bad tenant ID, a bad task ID and a bad --at', async () => {
    const tenant = await runAnnalist(['state', '--tenant', 'North-Wind', '--task', 'invoice-2041'], unreachable)
    expect(tenant.code).toBe(1)
    expect(tenant.stderr).toMatch(/^annalist: invalid tenant ID "North-Wind": tenant ID must match/)
    const taskId = await runAnnalist(['state', '--tenant', 'northwind', '--task', '-x'], unreachable)
    expect(taskId.stderr).toMatch(/^annalist: invalid task ID "-x"/)
    const at = await runAnnalist(['state', ...task, '--at', 'yesterday'], unreachable)
    expect(at.stderr).toMatch(/^annalist: --at must be a revision \(a whole number >= 0\) or an ISO 8601 time with a zone, e\.g\. .*; got "yesterday"/)
  })
})

describe('annalist state on the embedded PGlite data directory', () => {
  it('reads the same task there', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'annalist-state-'))
    const database = await openDatabase({ pgliteDataDir: path.join(dataDir, 'pgdata') })
    let recordedAt: Date[]
    try {
      recordedAt = await storeFixture(database)
    } finally {
      await database.close()
    }
    const result = await runAnnalist(['state', ...task, '--at', '5', '--format', 'json'], { ANNALIST_DATA_DIR: dataDir })
    expect(result.stderr).toBe('')
    expect(JSON.parse(result.stdout)).toMatchObject({ revision: '5', recordedAt: recordedAt[5]!.toISOString(), usedSnapshot: false, state: { currentStep: 'synthesize' } })
  })
})
