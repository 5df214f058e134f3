import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'
import type { Historian } from '../../historian/historian'
import { complianceStreamName, taskStreamName } from '../../historian/streams'
import { defaultProjections } from '../../projections/defaultProjections'
import { ProjectionRunner } from '../../projections/runner'
import { DATABASE_BACKENDS, historianPerTest, migrateSchema, migrationsFrom } from '../support/databases'
import { newEvents } from '../support/eventStoreContract'

/** Two tasks of `acme` and one of `globex`, interleaved: acme 1-3, globex 1-2, acme 4-5. */
async function appendInterleaved(historian: Historian, suffix: string): Promise<void> {
  const a = new TaskEventFactory('acme', `task-a${suffix}`)
  const b = new TaskEventFactory('globex', `task-b${suffix}`)
  const c = new TaskEventFactory('acme', `task-c${suffix}`)
  await appendTaskEvents(historian, 'acme', `task-a${suffix}`, [a.received(), a.routingInvoked()])
  await appendTaskEvents(historian, 'acme', `task-c${suffix}`, [c.received()])
  await appendTaskEvents(historian, 'globex', `task-b${suffix}`, [b.received(), b.routingInvoked()])
  await appendTaskEvents(historian, 'acme', `task-a${suffix}`, [a.planCreated(['search'])])
  await appendTaskEvents(historian, 'acme', `task-c${suffix}`, [c.routingInvoked()])
}

async function sequencesByTenant(pool: pg.Pool, table: 'events' | 'audit_timeline'): Promise<Record<string, string[]>> {
  const { rows } = await pool.query<{ tenant_id: string; sequences: string[] }>(
    `select tenant_id, array_agg(tenant_sequence::text order by position) as sequences from ${table} where tenant_id is not null group by tenant_id order by tenant_id`,
  )
  return Object.fromEntries(rows.map((row) => [row.tenant_id, row.sequences]))
}

const oneTo = (count: number) => Array.from({ length: count }, (_, index) => String(index + 1))

describe.each(DATABASE_BACKENDS)('migration 017 (tenant sequence) on $backend', ({ open }) => {
  const fixture = historianPerTest(open)

  it('numbers the events and audit rows written before it per tenant, by position, and appends continue from there', async () => {
    const pool = fixture.database.pool
    const catchUp = () => new ProjectionRunner({ store: fixture.store, pool, projections: defaultProjections() }).catchUp()
    await appendInterleaved(fixture.historian, '1')
    await catchUp()
    await migrateSchema(pool, 'down', migrationsFrom(17))
    // The build before 017 cannot run on this schema's successor, nor this build on it: append through its SQL function.
    for (const [stream, count] of [[taskStreamName('acme', 'task-old'), 2], [taskStreamName('globex', 'task-old'), 1], [taskStreamName('acme', 'task-old'), 1], [complianceStreamName('acme'), 1]] as const) {
      await pool.query('select * from annalist_append($1, $2, $3::jsonb)', [stream, 'any', JSON.stringify(newEvents(count).map((event) => ({ ...event, schemaVersion: 1 })))])
    }

    await migrateSchema(pool, 'up')
    expect(await sequencesByTenant(pool, 'events')).toEqual({ acme: oneTo(8), globex: oneTo(3) })
    expect(await sequencesByTenant(pool, 'audit_timeline')).toEqual({ acme: oneTo(5), globex: oneTo(2) })
    const compliance = await pool.query('select tenant_sequence from events where stream_name = $1', [complianceStreamName('acme')])
    expect(compliance.rows).toEqual([{ tenant_sequence: null }])
    const counters = await pool.query('select tenant_id, last_sequence::text from tenant_sequences order by tenant_id')
    expect(counters.rows).toEqual([
      { tenant_id: 'acme', last_sequence: '8' },
      { tenant_id: 'globex', last_sequence: '3' },
    ])

    await appendInterleaved(fixture.historian, '2')
    await catchUp()
    expect(await sequencesByTenant(pool, 'events')).toEqual({ acme: oneTo(13), globex: oneTo(5) })
    // The probes appended above are no domain events: the projection dead-letters them, so their numbers are missing here.
    expect(await sequencesByTenant(pool, 'audit_timeline')).toEqual({ acme: [...oneTo(5), ...oneTo(13).slice(8)], globex: ['1', '2', '4', '5'] })
  })

  it('refuses an append in one line, writing nothing, when tenant_sequences was set back, instead of rejecting it as a conflict for ever', async () => {
    const pool = fixture.database.pool
    await appendInterleaved(fixture.historian, '1')
    await pool.query(`update tenant_sequences set last_sequence = 1 where tenant_id = 'acme'`)
    const before = await sequencesByTenant(pool, 'events')
    const task = new TaskEventFactory('acme', 'task-after')
    await expect(appendTaskEvents(fixture.historian, 'acme', 'task-after', [task.received()])).rejects.toThrow(
      // The port does not model it, so it comes as the store's error (EventStoreUnavailableError), with its one line.
      /^postgres event store unavailable: tenant_sequences is behind the stored events of tenant acme: it was changed outside annalist_append; set its last_sequence to the highest events\.tenant_sequence of that tenant$/,
    )
    expect(await sequencesByTenant(pool, 'events')).toEqual(before)
    await pool.query(`update tenant_sequences set last_sequence = 5 where tenant_id = 'acme'`)
    await appendTaskEvents(fixture.historian, 'acme', 'task-after', [task.received()])
    expect((await sequencesByTenant(pool, 'events')).acme).toEqual(oneTo(6))
  })
})
