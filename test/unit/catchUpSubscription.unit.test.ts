import { describe, expect, it } from 'vitest'
import { InMemoryEventStore } from '../../historian/adapters/memoryEventStore'
import { pollingSubscription, type PollingSource } from '../../historian/catchUpSubscription'
import type { ReadAllOptions, RecordedEvent } from '../../historian/port'
import { freshStream, newEvents } from '../support/eventStoreContract'

/** The memory store as a polling source that counts its notification listeners and can be made to fail reads. */
function observedSource(store: InMemoryEventStore) {
  const observed = { listening: 0, reads: 0, failReadsWith: undefined as Error | undefined }
  const source: PollingSource = {
    readAll: async (options: ReadAllOptions) => {
      observed.reads += 1
      if (observed.failReadsWith) throw observed.failReadsWith
      return store.readAll(options)
    },
    onAppend: async (listener) => {
      const unsubscribe = await store.onAppend(listener)
      observed.listening += 1
      return async () => {
        observed.listening -= 1
        await unsubscribe()
      }
    },
  }
  return { source, observed }
}

describe('pollingSubscription', () => {
  it('wakes on an append notification, not on its poll interval, and releases its listener on stop', async () => {
    const store = new InMemoryEventStore()
    const { source, observed } = observedSource(store)
    // An hour-long poll: only the notification can deliver the live event within the test's time.
    const subscription = pollingSubscription(source, { batchSize: 10, pollIntervalMs: 3_600_000 })
    const iterator = subscription[Symbol.asyncIterator]()
    const next = iterator.next()
    const stream = freshStream()
    const [event] = newEvents(1)
    await store.appendToStream(stream, [event!], { expectedRevision: 'no_stream' })
    const delivered = await next
    expect(delivered).toMatchObject({ done: false, value: { eventId: event!.eventId, position: 1n } })
    expect(observed.listening).toBe(1)

    // A stop while the source sleeps for an hour ends the pending next() at once.
    const pending = iterator.next()
    await subscription.stop()
    expect(await pending).toEqual({ done: true, value: undefined })
    expect(observed.listening).toBe(0)
    expect(await iterator.next()).toEqual({ done: true, value: undefined })
  })

  it('delivers in batches from the checkpoint, each event once', async () => {
    const store = new InMemoryEventStore()
    const stream = freshStream()
    await store.appendToStream(stream, newEvents(7), { expectedRevision: 'no_stream' })
    const subscription = pollingSubscription(store, { from: 2n, batchSize: 2, pollIntervalMs: 3_600_000 })
    const received: RecordedEvent[] = []
    for await (const event of subscription) {
      received.push(event)
      if (received.length === 5) break
    }
    expect(received.map((event) => event.position)).toEqual([3n, 4n, 5n, 6n, 7n])
  })

  it('ends the iteration with the error of a failing read, after releasing its listener', async () => {
    const store = new InMemoryEventStore()
    const { source, observed } = observedSource(store)
    observed.failReadsWith = new Error('database went away')
    const subscription = pollingSubscription(source, { batchSize: 10, pollIntervalMs: 10 })
    const consumed = (async () => {
      for await (const event of subscription) void event
    })()
    await expect(consumed).rejects.toThrow('database went away')
    expect(observed.listening).toBe(0)
    expect(observed.reads).toBe(1)
  })

  it('refuses a checkpoint that is not a bigint >= 0', () => {
    expect(() => pollingSubscription(new InMemoryEventStore(), { from: -5n, batchSize: 1, pollIntervalMs: 10 })).toThrow(/from must be a bigint/)
  })
})
