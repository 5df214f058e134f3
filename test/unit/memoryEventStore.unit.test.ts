import { describe, expect, it } from 'vitest'
import { InMemoryEventStore } from '../../historian/adapters/memoryEventStore'
import { EventIdConflictError } from '../../historian/port'
import { eventStoreContract, freshStream, newEvents } from '../support/eventStoreContract'

// The benchmark's baseline must behave like a real store, or the overhead ratio would compare unlike things.
eventStoreContract('in-memory event store (benchmark baseline)', async () => ({ store: new InMemoryEventStore(), close: async () => undefined }))

describe('InMemoryEventStore beyond the contract', () => {
  it('refuses to re-append event IDs that a soft delete hid, as the PostgreSQL store does', async () => {
    const store = new InMemoryEventStore()
    const stream = freshStream()
    const first = newEvents(2)
    await store.appendToStream(stream, first, { expectedRevision: 'no_stream' })
    await store.deleteStream(stream, { expectedRevision: 1n })
    const error = await store.appendToStream(stream, [first[0]!], { expectedRevision: 'no_stream' }).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(EventIdConflictError)
    expect((error as EventIdConflictError).conflictingEventIds).toEqual([first[0]!.eventId])
    expect(await store.readAll()).toEqual([])
  })
})
