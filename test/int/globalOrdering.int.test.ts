import { randomUUID } from 'node:crypto'
import { describe, expect, it, vi } from 'vitest'
import type { ReadAllOptions, RecordedEvent } from '../../historian/port'
import { postgresStoreForSuite } from '../support/databases'
import { freshStream, newEvents } from '../support/eventStoreContract'

/** A projection-style subscriber: reads `position > checkpoint` and moves its checkpoint to the last event it saw. */
class CheckpointingSubscriber {
  checkpoint: bigint
  readonly seen: RecordedEvent[] = []

  constructor(
    private readonly readAll: (options: ReadAllOptions) => Promise<RecordedEvent[]>,
    start: bigint,
  ) {
    this.checkpoint = start
  }

  async poll(): Promise<void> {
    const batch = await this.readAll({ after: this.checkpoint })
    for (const event of batch) {
      this.seen.push(event)
      this.checkpoint = event.position
    }
  }
}

describe('global order of the PostgreSQL event log under a stalled writer', () => {
  const suite = postgresStoreForSuite()

  async function lastPosition(): Promise<bigint> {
    const { rows } = await suite.database.pool.query<{ last: string }>('select coalesce(max(position), 0)::text as last from events')
    return BigInt(rows[0]!.last)
  }

  async function waitingForAppendLock(): Promise<number> {
    const { rows } = await suite.database.pool.query<{ waiting: number }>(
      "select count(*)::int as waiting from pg_locks where locktype = 'advisory' and not granted",
    )
    return rows[0]!.waiting
  }

  it('with the append lock, a subscriber sees every event exactly once and in position order', async () => {
    const subscriber = new CheckpointingSubscriber((options) => suite.store.readAll(options), await lastPosition())
    const stalledStream = freshStream()
    const stalledEvents = newEvents(2)

    // A writer that draws its positions and then stalls before committing.
    const stalled = await suite.database.pool.connect()
    let others: Promise<unknown>[] = []
    try {
      await stalled.query('begin')
      const outcome = await suite.store.appendInTransaction(stalled, stalledStream, stalledEvents, 'no_stream')
      expect(outcome.status).toBe('written')

      // Other writers start meanwhile; they must queue behind the lock rather than commit past the stalled writer.
      const otherStreams = [freshStream(), freshStream(), freshStream()]
      others = otherStreams.map((stream) => suite.store.appendToStream(stream, newEvents(2), { expectedRevision: 'no_stream' }))
      await vi.waitFor(async () => expect(await waitingForAppendLock()).toBe(otherStreams.length), { timeout: 10_000, interval: 20 })

      // The subscriber keeps polling while the writer is stalled: nothing is visible, so its checkpoint cannot move past it.
      const checkpointDuringStall = subscriber.checkpoint
      for (let poll = 0; poll < 5; poll += 1) await subscriber.poll()
      expect(subscriber.seen).toEqual([])
      expect(subscriber.checkpoint).toBe(checkpointDuringStall)

      await stalled.query('commit')
    } finally {
      stalled.release()
    }
    const results = await Promise.all(others)
    expect(results).toHaveLength(3)

    const expectedCount = 2 + 3 * 2
    await vi.waitFor(
      async () => {
        await subscriber.poll()
        expect(subscriber.seen.length).toBeGreaterThanOrEqual(expectedCount)
      },
      { timeout: 10_000, interval: 20 },
    )
    const seenPositions = subscriber.seen.map((event) => event.position)
    expect(new Set(seenPositions).size).toBe(seenPositions.length)
    expect([...seenPositions].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(seenPositions)
    expect(subscriber.seen).toHaveLength(expectedCount)
    // The stalled writer drew the lowest positions and committed first; the subscriber did not skip them.
    expect(subscriber.seen.slice(0, 2).map((event) => event.eventId)).toEqual(stalledEvents.map((event) => event.eventId))
    expect(await suite.store.readAll({ after: subscriber.checkpoint })).toEqual([])
  })

  it('without the lock, a subscriber that checkpointed past a late commit misses that event for good', async () => {
    const subscriber = new CheckpointingSubscriber((options) => suite.store.readAll(options), await lastPosition())
    const bypassStream = freshStream()
    const bypassId = randomUUID()

    // A writer that bypasses the append lock: a raw INSERT that draws a position and commits late.
    const raw = await suite.database.pool.connect()
    let bypassPosition: bigint
    try {
      await raw.query('begin')
      const inserted = await raw.query<{ position: string }>(
        `insert into events (stream_name, stream_revision, event_id, event_type, data, metadata)
         values ($1, 0, $2, 'Bypass', '{}'::jsonb, '{}'::jsonb) returning position::text`,
        [bypassStream, bypassId],
      )
      bypassPosition = BigInt(inserted.rows[0]!.position)

      // A locked append commits a later position while the raw insert is still open.
      const later = await suite.store.appendToStream(freshStream(), newEvents(1), { expectedRevision: 'no_stream' })
      expect(later.position > bypassPosition).toBe(true)
      await subscriber.poll()
      expect(subscriber.checkpoint).toBe(later.position)

      await raw.query('commit')
    } finally {
      raw.release()
    }

    // The late row is in the log now, below the subscriber's checkpoint...
    const everything = await suite.store.readAll({ after: bypassPosition - 1n })
    expect(everything[0]).toMatchObject({ eventId: bypassId, position: bypassPosition })
    // ...and the subscriber never sees it.
    await subscriber.poll()
    expect(subscriber.seen.map((event) => event.eventId)).not.toContain(bypassId)
    expect(subscriber.seen.every((event) => event.position > bypassPosition)).toBe(true)
  })
})
