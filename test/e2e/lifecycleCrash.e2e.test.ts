import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { complianceStreamName, taskStreamName } from '../../historian/streams'
import { freshPostgresDatabase } from '../support/databases'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'
import { killCliBlockedOnLock } from '../support/killBlockedCli'
import { operatorKeyEnv } from '../support/operatorKey'
import { runAnnalist } from '../support/runCli'

/**
 * `annalist lifecycle truncate` SIGKILLed after it recorded its decision and before the store applied it: the test holds
 * an EXCLUSIVE lock on stream_metadata (reads go on, the metadata write waits), kills the process (and its waiting
 * server backend) once the decision is in the compliance stream, and `annalist lifecycle sync` heals the store.
 */
describe('a lifecycle command killed between recording and applying its decision', () => {
  let database: Database & { url: string }
  const key = generateIntegrityKey()
  let operator: { ANNALIST_API_KEY: string }
  const env = () => ({ DATABASE_URL: database.url, ANNALIST_INTEGRITY_KEY: key, ...operator })

  beforeAll(async () => {
    database = await freshPostgresDatabase()
    operator = await operatorKeyEnv(database.pool)
    const historian = new Historian(new PostgresEventStore(database), { keyRing: TenantKeyRing.fromText(key) })
    const f = new TaskEventFactory('acme', 'task-a')
    await historian.appendToTask('acme', 'task-a', [f.received(), f.routingInvoked(), f.planCreated(['search']), f.toolExecuted('call-1', 'search')], { revision: 'no_stream' })
  })
  afterAll(async () => {
    await database?.close()
  })

  it('leaves the decision recorded and unapplied; sync applies it; a retried command records nothing new', async () => {
    const store = new PostgresEventStore(database)
    const target = taskStreamName('acme', 'task-a')
    const blocker = await database.pool.connect()
    try {
      await blocker.query('begin')
      await blocker.query('lock table stream_metadata in exclusive mode')
      await killCliBlockedOnLock(
        database.pool,
        ['lifecycle', 'truncate', '--tenant', 'acme', '--task', 'task-a', '--before', '2', '--by', 'dpo@example.test', '--reason', 'ticket C-42'],
        env(),
        // Blocked before the apply: the decision is recorded, nothing applied yet.
        async () => expect(await store.readStream(complianceStreamName('acme'))).toHaveLength(1),
      )
    } finally {
      await blocker.query('rollback')
      blocker.release()
    }
    expect(await store.getStreamMetadata(target)).toMatchObject({ metadataRevision: 'no_metadata' })

    const check = await runAnnalist(['lifecycle', 'check'], env())
    expect(check.code).toBe(2)
    expect(check.stdout).toContain(`${target}: the store has no rules, the decisions truncateBefore 2`)

    const sync = await runAnnalist(['lifecycle', 'sync'], env())
    expect(sync.stderr).not.toMatch(/annalist:/)
    expect(sync.code).toBe(0)
    expect(sync.stdout).toContain(`${target}: brought in line with its decisions`)
    expect((await store.getStreamMetadata(target)).metadata).toEqual({ truncateBefore: 2n })

    const retried = await runAnnalist(['lifecycle', 'truncate', '--tenant', 'acme', '--task', 'task-a', '--before', '2', '--by', 'dpo@example.test', '--reason', 'ticket C-42'], env())
    expect(retried.stdout).toMatch(/^already decided/)
    expect(await store.readStream(complianceStreamName('acme'))).toHaveLength(1)
  })
})
