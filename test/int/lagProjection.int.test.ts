import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { defaultProjections } from '../../projections/defaultProjections'
import { projectionLag, registerProjectionMetrics } from '../../projections/lag'
import { ProjectionRunner, type ProjectionProgress } from '../../projections/runner'
import { DATABASE_BACKENDS, historianPerTest } from '../support/databases'
import { appendTaskRuns } from '../../dev/fixtures/taskRuns'

describe.each(DATABASE_BACKENDS)('projection lag on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const names = ['audit_timeline', 'task_summary']

  it('is the events after the checkpoint and the age of the oldest of them; zero when caught up', async () => {
    expect(await projectionLag(fixture.database.pool, fixture.store, names)).toEqual(
      names.map((projection) => ({ projection, checkpoint: 0n, headPosition: 0n, eventsBehind: 0, oldestUnprojectedAgeMs: 0, lastBatchLagMs: null, deadLetters: 0 })),
    )
    const projections = defaultProjections().filter((projection) => names.includes(projection.name))
    const first = await appendTaskRuns(fixture.historian, { tenants: 2, events: 14 })
    // The batch's oldest event is made an hour older than the rest, so the last batch's lag is measured from it: an
    // hour plus the time the catch-up took (measured from the newest event, it would be well under an hour).
    await fixture.database.pool.query(`update events set recorded_at = recorded_at - interval '1 hour' where position = (select min(position) from events)`)
    const progress: ProjectionProgress[] = []
    await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections, onProgress: (p) => progress.push(p) }).catchUp()
    const caughtUp = await projectionLag(fixture.database.pool, fixture.store, names)
    expect(progress).toHaveLength(2)
    for (const lag of caughtUp) {
      expect(lag).toMatchObject({ checkpoint: first, headPosition: first, eventsBehind: 0, oldestUnprojectedAgeMs: 0, deadLetters: 0 })
      expect(lag.lastBatchLagMs).toBeGreaterThan(3_600_000)
      expect(lag.lastBatchLagMs).toBeLessThan(3_600_000 + 60_000)
      // The persisted figure is the lag the runner reported for that batch (its own is in whole milliseconds).
      const reported = progress.find((p) => p.projection === lag.projection)!
      expect(Math.abs(lag.lastBatchLagMs! - reported.lagMs)).toBeLessThanOrEqual(2)
    }
    for (const p of progress) {
      expect(p.eventLagsMs).toHaveLength(14)
      // The batch's lag is its oldest event's, the backdated first one; every other event's is well under an hour.
      expect(p.lagMs).toBe(p.eventLagsMs[0])
      expect(p.lagMs).toBeGreaterThan(3_600_000)
      for (const lag of p.eventLagsMs.slice(1)) expect(lag).toBeLessThan(3_600_000)
    }

    // k = 7 more events, none projected yet: behind by exactly 7, the oldest recorded at the first of them.
    const head = await appendTaskRuns(fixture.historian, { tenants: 1, events: 7, prefix: 'late' })
    const [oldest] = await fixture.store.readAll({ after: first, maxCount: 1 })
    const now = new Date(oldest!.recordedAt.getTime() + 12_345)
    const behind = await projectionLag(fixture.database.pool, fixture.store, names, now)
    for (const lag of behind) expect(lag).toMatchObject({ checkpoint: first, headPosition: head, eventsBehind: 7, oldestUnprojectedAgeMs: 12_345 })

    // One projection catches up, the other does not; a dead letter is counted.
    await new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: [projections[0]!] }).catchUp()
    await fixture.database.pool.query(
      `insert into projection_dead_letters (projection, position, event_id, event_type, stream_name, error) values ('task_summary', 2, 'x', 'T', 's', 'e')`,
    )
    const mixed = await projectionLag(fixture.database.pool, fixture.store, names, now)
    expect(mixed.map((lag) => [lag.projection, lag.checkpoint, lag.headPosition, lag.eventsBehind, lag.deadLetters])).toEqual([
      ['audit_timeline', head, head, 0, 0],
      ['task_summary', first, head, 7, 1],
    ])

    const registry = new Registry()
    const metrics = registerProjectionMetrics(registry, () => projectionLag(fixture.database.pool, fixture.store, names, now))
    for (const p of progress) metrics.observe(p)
    const text = await registry.metrics()
    expect(text).toContain('annalist_projection_events_behind{projection="task_summary"} 7')
    expect(text).toContain('annalist_projection_events_behind{projection="audit_timeline"} 0')
    expect(text).toContain('annalist_projection_oldest_unprojected_age_seconds{projection="task_summary"} 12.345')
    expect(text).toContain('annalist_projection_dead_letters{projection="task_summary"} 1')
    expect(text).toContain('annalist_projection_lag_seconds_count{projection="audit_timeline"} 14')
    // task_summary's last batch is still the backdated one; audit_timeline's is the late events' own.
    expect(text).toMatch(/annalist_projection_last_batch_lag_seconds\{projection="task_summary"\} 36\d\d/)
    expect(text).toMatch(/annalist_projection_last_batch_lag_seconds\{projection="audit_timeline"\} \d/)
  })
})
