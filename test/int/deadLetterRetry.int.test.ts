import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import { defaultProjections } from '../../projections/defaultProjections'
import { listDeadLetters, listResolvedDeadLetters } from '../../projections/projectionDeadLetters'
import type { Projection } from '../../projections/projection'
import { rebuildAndCompare } from '../../projections/rebuild'
import { retryDeadLetters, UnknownProjectionError } from '../../projections/retryProjectionDeadLetters'
import { ProjectionRunner, readCheckpoint } from '../../projections/runner'
import { DATABASE_BACKENDS, historianPerTest } from '../support/databases'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'
import { appendTaskRuns } from '../../dev/fixtures/taskRuns'

/** A projection of one row per event that cannot digest plans until `fixed` is set: a bug, then its fix. */
function planAverse(state: { fixed: boolean }): Projection<'probe_rows'> {
  return {
    name: 'probe',
    tables: ['probe_rows'],
    orderIndependent: true,
    async apply(client, stored, tables) {
      await client.query(`insert into ${tables.probe_rows} (position, event_type) values ($1, $2) on conflict do nothing`, [stored.position.toString(), stored.event.type])
      if (stored.event.type === 'PlanCreated' && !state.fixed) throw new Error('probe cannot digest plans')
    },
  }
}

async function probeTypes(pool: pg.Pool): Promise<string[]> {
  return (await pool.query<{ event_type: string }>('select event_type from probe_rows order by position')).rows.map((row) => row.event_type)
}

describe.each(DATABASE_BACKENDS)('dead-letter retry on $backend', ({ open }) => {
  const fixture = historianPerTest(open)

  it('applies just the event for an order-independent projection once the cause is fixed, and keeps the record', async () => {
    await fixture.database.pool.query('create table probe_rows (position bigint primary key, event_type text not null)')
    const state = { fixed: false }
    const end = await appendTaskRuns(fixture.historian, { tenants: 2, events: 14 })
    await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: [planAverse(state)] }).catchUp()
    const letters = await listDeadLetters(fixture.database.pool)
    expect(letters.map((letter) => [letter.position, letter.eventType, letter.error, letter.attempts])).toEqual([
      [3n, 'PlanCreated', 'Error: probe cannot digest plans', 1],
      [10n, 'PlanCreated', 'Error: probe cannot digest plans', 1],
    ])
    expect(await readCheckpoint(fixture.database.pool, 'probe')).toBe(end)

    // Not fixed yet: the retry fails again, counts the attempt and keeps the letter.
    const failed = await retryDeadLetters(fixture.store, fixture.database.pool, [planAverse(state)], { position: 3n })
    expect(failed).toEqual([
      { projection: 'probe', position: 3n, eventType: 'PlanCreated', outcome: 'failed', method: 'event', attempts: 2, error: 'Error: probe cannot digest plans' },
    ])
    expect((await listDeadLetters(fixture.database.pool)).map((letter) => letter.attempts)).toEqual([2, 1])
    expect(await probeTypes(fixture.database.pool)).not.toContain('PlanCreated')

    state.fixed = true
    const retried = await retryDeadLetters(fixture.store, fixture.database.pool, [planAverse(state)])
    expect(retried.map((retry) => [retry.position, retry.outcome, retry.method, retry.attempts])).toEqual([
      [3n, 'applied', 'event', 3],
      [10n, 'applied', 'event', 2],
    ])
    expect(await listDeadLetters(fixture.database.pool)).toEqual([])
    expect((await listResolvedDeadLetters(fixture.database.pool)).map((letter) => [letter.position, letter.resolution, letter.attempts])).toEqual([
      [3n, 'retried', 2],
      [10n, 'retried', 1],
    ])
    expect((await probeTypes(fixture.database.pool)).filter((type) => type === 'PlanCreated')).toHaveLength(2)
    expect(await probeTypes(fixture.database.pool)).toHaveLength(14)
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, [planAverse(state)])).toMatchObject({ matches: true })
  })

  it('rebuilds an order-dependent projection around the fixed event, so its fold equals a rebuild', async () => {
    const f = new TaskEventFactory('acme', 'task-a')
    await appendTaskEvents(fixture.historian, 'acme', 'task-a', [f.received(), f.routingInvoked(), f.planCreated(['search'])])
    // A malformed tool call the schema rejects, then later events of the same task that the fold applies before it.
    const poison = await fixture.database.pool.query<{ position: string }>(
      `insert into events (stream_name, stream_revision, event_id, event_type, data, metadata)
       values ('tenant_acme-task-a', 3, gen_random_uuid(), 'ToolCallExecuted', $1, $2)
       returning position`,
      [JSON.stringify(f.toolExecuted('call-1', '').event.data), JSON.stringify(f.toolExecuted('call-1', 'search').event.metadata)],
    )
    await appendTaskEvents(fixture.historian, 'acme', 'task-a', [f.toolExecuted('call-2', 'search'), f.synthesisInvoked()])
    const position = BigInt(poison.rows[0]!.position)
    const projections = defaultProjections()
    await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections }).catchUp()
    expect((await listDeadLetters(fixture.database.pool)).map((letter) => [letter.projection, letter.position])).toEqual(
      projections.map((projection) => [projection.name, position]).sort(),
    )

    // The fix: the event is repaired (in real life: an upcaster or a code fix), then retried for task_summary only.
    await fixture.database.pool.query(`update events set data = jsonb_set(data, '{toolName}', '"search"') where position = $1`, [position.toString()])
    const retried = await retryDeadLetters(fixture.store, fixture.database.pool, projections, { projection: 'task_summary' })
    expect(retried).toEqual([{ projection: 'task_summary', position, eventType: 'ToolCallExecuted', outcome: 'applied', method: 'rebuild', attempts: 2, error: null }])
    const summary = await fixture.database.pool.query<{ tool_calls_succeeded: number; events_applied: number }>(`select tool_calls_succeeded, events_applied from task_summary`)
    expect(summary.rows).toEqual([{ tool_calls_succeeded: 2, events_applied: 6 }])
    expect((await listDeadLetters(fixture.database.pool)).map((letter) => letter.projection).sort()).toEqual(['analytics', 'audit_timeline', 'task_dead_letters'])
    expect((await listResolvedDeadLetters(fixture.database.pool)).map((letter) => [letter.projection, letter.resolution])).toEqual([['task_summary', 'retried']])

    const rest = await retryDeadLetters(fixture.store, fixture.database.pool, projections, { position })
    expect(rest.map((retry) => [retry.projection, retry.outcome])).toEqual([
      ['audit_timeline', 'applied'],
      ['analytics', 'applied'],
      ['task_dead_letters', 'applied'],
    ])
    expect(await listDeadLetters(fixture.database.pool)).toEqual([])
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, projections)).toMatchObject({ matches: true })
  })

  it('names the known projections when asked for an unknown one, and changes nothing', async () => {
    const error = await retryDeadLetters(fixture.store, fixture.database.pool, defaultProjections(), { projection: 'nope' }).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(UnknownProjectionError)
    expect((error as Error).message).toBe('unknown projection "nope"; known projections: audit_timeline, task_summary, analytics, task_dead_letters')
  })
})
