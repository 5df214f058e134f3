import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import { defaultProjections } from '../../projections/defaultProjections'
import { listResolvedDeadLetters } from '../../projections/projectionDeadLetters'
import { rebuildAndCompare } from '../../projections/rebuild'
import { ProjectionRunner, readCheckpoint } from '../../projections/runner'
import { freshPostgresDatabase, randomKeyRing } from '../support/databases'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'
import { createApiKey } from '../../api/keys'
import { operatorKeyEnv } from '../support/operatorKey'
import { runAnnalist } from '../support/runCli'

/** The poison-event path through the CLI, then `rebuild` and `lag`, on a PostgreSQL server database. */
describe('annalist dead-letters, rebuild and lag', () => {
  let database: Database & { url: string }
  let store: PostgresEventStore
  let poison: bigint
  let end: bigint
  let operatorEnv: { ANNALIST_API_KEY: string }
  const cli = (args: string[]) => runAnnalist(args, { DATABASE_URL: database.url, ...operatorEnv })

  beforeAll(async () => {
    database = await freshPostgresDatabase()
    store = new PostgresEventStore(database)
    const historian = new Historian(store, { keyRing: randomKeyRing() })
    const f = new TaskEventFactory('acme', 'task-a')
    await appendTaskEvents(historian, 'acme', 'task-a', [f.received(), f.routingInvoked(), f.planCreated(['search'])])
    // A tool call whose data fails its schema (an empty tool name): every projection fails to read it.
    const broken = f.toolExecuted('call-1', 'search')
    const inserted = await database.pool.query<{ position: string }>(
      `insert into events (stream_name, stream_revision, event_id, event_type, data, metadata)
       values ('tenant_acme-task-a', 3, $1, 'ToolCallExecuted', $2, $3) returning position`,
      [broken.eventId, JSON.stringify({ ...(broken.event.data as object), toolName: '' }), JSON.stringify(broken.event.metadata)],
    )
    poison = BigInt(inserted.rows[0]!.position)
    end = (await appendTaskEvents(historian, 'acme', 'task-a', [f.synthesisInvoked()])).position
    await new ProjectionRunner({ store, pool: database.pool, projections: defaultProjections() }).catchUp()
    operatorEnv = await operatorKeyEnv(database.pool)
  })
  afterAll(async () => {
    await store?.close()
    await database?.close()
  })

  it('lists the poison event with its position and error, retries it after the fix, and keeps the record', async () => {
    for (const projection of defaultProjections()) expect(await readCheckpoint(database.pool, projection.name)).toBe(end)
    const listed = await cli(['projection-dead-letters', 'list', '--format', 'json'])
    expect(listed.code).toBe(0)
    const letters = JSON.parse(listed.stdout) as { projection: string; position: string; eventType: string; error: string }[]
    expect(letters.map((letter) => [letter.projection, letter.position, letter.eventType])).toEqual(
      ['analytics', 'audit_timeline', 'task_dead_letters', 'task_summary'].map((name) => [name, String(poison), 'ToolCallExecuted']),
    )
    for (const letter of letters) expect(letter.error).toMatch(/^EventSchemaError: event ToolCallExecuted fails its schema/)
    const table = await cli(['projection-dead-letters', 'list', '--projection', 'task_summary'])
    expect(table.stdout).toContain('ToolCallExecuted')
    expect(table.stdout).toContain(String(poison))

    // Retrying changes state: without a key, or with a key lacking projectionDeadLetter.retry, it is refused in one line.
    const noKey = await runAnnalist(['projection-dead-letters', 'retry', '--all'], { DATABASE_URL: database.url })
    expect([noKey.code, noKey.stdout]).toEqual([1, ''])
    expect(noKey.stderr.trim()).toBe('annalist: ANNALIST_API_KEY: not set; this command needs an API key with the permission projectionDeadLetter.retry (docs/roles.md)  (run with --verbose for details)')
    const analyst = await createApiKey(database.pool, { role: 'analyst' })
    const denied = await runAnnalist(['projection-dead-letters', 'retry', '--all'], { DATABASE_URL: database.url, ANNALIST_API_KEY: analyst.key })
    expect([denied.code, denied.stdout]).toEqual([1, ''])
    expect(denied.stderr.trim()).toBe(`annalist: API key ${analyst.id} (analyst) may not projectionDeadLetter.retry  (run with --verbose for details)`)

    // Before the fix: the retry fails again (so the refused ones retried nothing), says so, and exits 2.
    const early = await cli(['projection-dead-letters', 'retry', '--position', String(poison), '--projection', 'audit_timeline', '--format', 'csv'])
    expect(early.code).toBe(2)
    expect(early.stdout.split('\n')[1]).toMatch(new RegExp(`^audit_timeline,${poison},ToolCallExecuted,failed,rebuild,2,EventSchemaError`))

    await database.pool.query(`update events set data = jsonb_set(data, '{toolName}', '"search"') where position = $1`, [poison.toString()])
    const retried = await cli(['projection-dead-letters', 'retry', '--all', '--format', 'json'])
    expect(retried.stderr).toBe('')
    expect(retried.code).toBe(0)
    expect((JSON.parse(retried.stdout) as { projection: string; outcome: string }[]).map((retry) => [retry.projection, retry.outcome])).toEqual([
      ['audit_timeline', 'applied'],
      ['task_summary', 'applied'],
      ['analytics', 'applied'],
      ['task_dead_letters', 'applied'],
    ])
    // The old name still answers, as a documented alias.
    expect((await cli(['dead-letters', 'list'])).stdout.trim()).toBe('no dead letters')
    expect((await listResolvedDeadLetters(database.pool)).map((letter) => [letter.projection, letter.position, letter.resolution])).toEqual(
      ['audit_timeline', 'task_summary', 'analytics', 'task_dead_letters'].map((name) => [name, poison, 'retried']),
    )
    expect(await rebuildAndCompare(store, database.pool, defaultProjections())).toMatchObject({ matches: true })
  })

  it('rebuilds a projection and reports rows and equality; an unknown name lists the known ones', async () => {
    // Only a key without a tenant scope may rebuild: a scoped operator and an unknown key are refused, the key never shown.
    const scoped = await createApiKey(database.pool, { role: 'operator', tenantId: 'acme' })
    const refused = await runAnnalist(['rebuild', 'task_summary'], { DATABASE_URL: database.url, ANNALIST_API_KEY: scoped.key })
    expect([refused.code, refused.stdout]).toEqual([1, ''])
    expect(refused.stderr.trim()).toBe(`annalist: API key ${scoped.id} (operator of tenant acme) may not projection.rebuild  (run with --verbose for details)`)
    const unknownKey = 'k'.repeat(43)
    const notAKey = await runAnnalist(['rebuild', 'task_summary'], { DATABASE_URL: database.url, ANNALIST_API_KEY: unknownKey })
    expect(notAKey.code).toBe(1)
    expect(notAKey.stderr.trim()).toBe('annalist: ANNALIST_API_KEY: not a valid API key (malformed, unknown or revoked)  (run with --verbose for details)')
    expect(`${refused.stderr}${notAKey.stderr}`).not.toMatch(new RegExp(`${scoped.key}|${unknownKey}`))

    const rebuilt = await cli(['rebuild', 'task_summary'])
    expect(rebuilt.code).toBe(0)
    expect(rebuilt.stdout).toContain(`task_summary: rebuilt 5 events up to position ${end} and swapped in: task_summary 1 rows; 0 dead letter(s)`)
    expect(rebuilt.stdout).toContain('task_summary: equal to the incremental read model it replaced')
    expect(rebuilt.stderr).toMatch(/task_summary \|.*\| 5\/5 events/)

    const unknown = await cli(['rebuild', 'nope'])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1)
    expect(unknown.stderr).toContain('unknown projection "nope"; known projections: audit_timeline, task_summary, analytics, task_dead_letters, all')
  })

  it('prints the lag of every projection', async () => {
    const lag = await cli(['lag', '--format', 'json'])
    expect(lag.code).toBe(0)
    const rows = JSON.parse(lag.stdout) as { projection: string; checkpoint: string; headPosition: string; eventsBehind: number; deadLetters: number }[]
    expect(rows.map((row) => [row.projection, row.checkpoint, row.headPosition, row.eventsBehind, row.deadLetters])).toEqual(
      ['audit_timeline', 'task_summary', 'analytics', 'task_dead_letters'].map((name) => [name, String(end), String(end), 0, 0]),
    )
  })
})
