import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  ConcurrencyError,
  EventIdConflictError,
  MetadataConcurrencyError,
  StreamTombstonedError,
  UnsupportedStoreOperationError,
  type EventStore,
  type ExpectedRevisionForDelete,
  type NewEvent,
  type RecordedEvent,
  type StreamMetadata,
} from '../../historian/port'
import { complianceStreamName, taskStreamName } from '../../historian/streams'
import { randomSuffix } from './databases'

/** A store under test and how to dispose of it. */
export interface EventStoreUnderTest {
  readonly store: EventStore
  close(): Promise<void>
}

/**
 * Whether a store promises that `onAppend` hears appends (stores may expose `notifiesOnAppend: false`, e.g. PostgreSQL
 * behind the embedded socket server, where readers poll). Stores that do not say are held to notifying.
 */
export function notifiesOnAppend(store: EventStore): boolean {
  return (store as Partial<{ notifiesOnAppend: boolean }>).notifiesOnAppend ?? true
}

/** A fresh tenant ID for one test: valid, and shared with nobody. */
export function freshTenant(): string {
  return `t_${randomSuffix()}`
}

/** A fresh task stream of `tenant` (a fresh tenant unless given). */
export function freshStream(tenant = freshTenant()): string {
  return taskStreamName(tenant, `task-${randomSuffix()}`)
}

/** `count` new events with random IDs; `type` defaults to ContractProbe. */
export function newEvents(count: number, type = 'ContractProbe'): NewEvent[] {
  return Array.from({ length: count }, (_, index) => ({
    eventId: randomUUID(),
    type,
    data: { index, note: `event ${index}`, nested: { ok: true, list: [1, 'two', null] } },
    metadata: { schemaVersion: 1, correlationId: randomUUID(), index },
  }))
}

const ids = (events: readonly { eventId: string }[]) => events.map((event) => event.eventId)
const positions = (events: readonly RecordedEvent[]) => events.map((event) => event.position)

function expectStrictlyIncreasing(values: readonly bigint[]): void {
  for (let index = 1; index < values.length; index += 1) expect(values[index]! > values[index - 1]!).toBe(true)
}

/** How long to poll for something another part of the store does asynchronously (notifications, EventStoreDB's metadata). */
const WAIT = { timeout: 10_000, interval: 20 }

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the call to fail, but it succeeded')
}

/**
 * The behaviour every EventStore adapter must show, registered as one describe block. The factory runs once for the
 * block; every test uses fresh tenants and streams, so tests do not see each other's events.
 */
export function eventStoreContract(name: string, factory: () => Promise<EventStoreUnderTest>): void {
  describe(`EventStore contract: ${name}`, () => {
    let subject: EventStoreUnderTest | undefined
    const store = () => {
      if (!subject) throw new Error('store factory did not run')
      return subject.store
    }

    beforeAll(async () => {
      subject = await factory()
    })
    afterAll(async () => {
      await subject?.close()
    })

    describe('appending and reading one stream', () => {
      it('appends a batch at no_stream and reads it back forwards and backwards, intact', async () => {
        const stream = freshStream()
        const batch = newEvents(3)
        const result = await store().appendToStream(stream, batch, { expectedRevision: 'no_stream' })
        expect(result.written).toBe(true)
        expect(result.nextExpectedRevision).toBe(2n)

        const forwards = await store().readStream(stream)
        expect(ids(forwards)).toEqual(ids(batch))
        expect(forwards.map((event) => event.revision)).toEqual([0n, 1n, 2n])
        expect(forwards.map((event) => event.streamName)).toEqual([stream, stream, stream])
        expect(forwards.map((event) => event.type)).toEqual(batch.map((event) => event.type))
        expect(forwards.map((event) => event.data)).toEqual(batch.map((event) => event.data))
        expect(forwards.map((event) => event.metadata)).toEqual(batch.map((event) => event.metadata))
        expect(forwards.every((event) => event.recordedAt instanceof Date && !Number.isNaN(event.recordedAt.getTime()))).toBe(true)
        expectStrictlyIncreasing(positions(forwards))
        expect(result.position).toBe(forwards[2]!.position)

        const backwards = await store().readStream(stream, { direction: 'backwards' })
        expect(ids(backwards)).toEqual(ids(batch).reverse())
      })

      it('appends at the expected revision and continues the revisions', async () => {
        const stream = freshStream()
        const first = await store().appendToStream(stream, newEvents(2), { expectedRevision: 'no_stream' })
        const second = await store().appendToStream(stream, newEvents(2), { expectedRevision: first.nextExpectedRevision })
        expect(second).toMatchObject({ nextExpectedRevision: 3n, written: true })
        expect(second.position > first.position).toBe(true)
        expect((await store().readStream(stream)).map((event) => event.revision)).toEqual([0n, 1n, 2n, 3n])
      })

      it('reads from a revision and up to a maximum count, in both directions', async () => {
        const stream = freshStream()
        const batch = newEvents(5)
        await store().appendToStream(stream, batch, { expectedRevision: 'no_stream' })

        expect(ids(await store().readStream(stream, { fromRevision: 2n }))).toEqual(ids(batch.slice(2)))
        expect(ids(await store().readStream(stream, { fromRevision: 1n, maxCount: 2 }))).toEqual(ids(batch.slice(1, 3)))
        expect(ids(await store().readStream(stream, { direction: 'backwards', fromRevision: 2n }))).toEqual(ids(batch.slice(0, 3)).reverse())
        expect(ids(await store().readStream(stream, { direction: 'backwards', maxCount: 2 }))).toEqual(ids(batch.slice(3)).reverse())
        expect(await store().readStream(stream, { fromRevision: 5n })).toEqual([])
      })

      it('reads a stream that does not exist as empty', async () => {
        expect(await store().readStream(freshStream())).toEqual([])
        expect(await store().readStream(freshStream(), { direction: 'backwards' })).toEqual([])
      })

      it("accepts 'any' and 'stream_exists' where they hold", async () => {
        const stream = freshStream()
        await store().appendToStream(stream, newEvents(1), { expectedRevision: 'any' })
        const result = await store().appendToStream(stream, newEvents(1), { expectedRevision: 'stream_exists' })
        expect(result).toMatchObject({ nextExpectedRevision: 1n, written: true })
        await store().appendToStream(stream, newEvents(1), { expectedRevision: 'any' })
        expect(await store().readStream(stream)).toHaveLength(3)
      })
    })

    describe('expected revision conflicts', () => {
      it('rejects a stale expected revision with ConcurrencyError naming expected and actual, and writes nothing', async () => {
        const stream = freshStream()
        await store().appendToStream(stream, newEvents(3), { expectedRevision: 'no_stream' })
        const error = await rejectionOf(store().appendToStream(stream, newEvents(1), { expectedRevision: 0n }))
        expect(error).toBeInstanceOf(ConcurrencyError)
        expect(error).toMatchObject({ stream, expected: 0n, actual: 2n })
        expect(await store().readStream(stream)).toHaveLength(3)
      })

      it("rejects 'no_stream' on an existing stream and 'stream_exists' or a revision on a missing one", async () => {
        const stream = freshStream()
        await store().appendToStream(stream, newEvents(1), { expectedRevision: 'no_stream' })
        const existing = await rejectionOf(store().appendToStream(stream, newEvents(1), { expectedRevision: 'no_stream' }))
        expect(existing).toBeInstanceOf(ConcurrencyError)
        expect(existing).toMatchObject({ expected: 'no_stream', actual: 0n })

        const missing = freshStream()
        const notThere = await rejectionOf(store().appendToStream(missing, newEvents(1), { expectedRevision: 'stream_exists' }))
        expect(notThere).toBeInstanceOf(ConcurrencyError)
        expect(notThere).toMatchObject({ expected: 'stream_exists', actual: 'no_stream' })
        const ahead = await rejectionOf(store().appendToStream(missing, newEvents(1), { expectedRevision: 4n }))
        expect(ahead).toMatchObject({ expected: 4n, actual: 'no_stream' })
        expect(await store().readStream(missing)).toEqual([])
      })
    })

    describe('idempotent re-appends', () => {
      it('treats the same IDs at the same expected revision as a no-op', async () => {
        const stream = freshStream()
        const batch = newEvents(2)
        const first = await store().appendToStream(stream, batch, { expectedRevision: 'no_stream' })
        const again = await store().appendToStream(stream, batch, { expectedRevision: 'no_stream' })
        expect(again).toEqual({ nextExpectedRevision: first.nextExpectedRevision, position: first.position, written: false })
        expect(ids(await store().readStream(stream))).toEqual(ids(batch))

        const next = newEvents(1)
        const third = await store().appendToStream(stream, next, { expectedRevision: 1n })
        const thirdAgain = await store().appendToStream(stream, next, { expectedRevision: 1n })
        expect(thirdAgain).toEqual({ ...third, written: false })
        expect(await store().readStream(stream)).toHaveLength(3)
      })

      it('is still a no-op after the stream moved on, when the IDs sit right after the expected revision', async () => {
        const stream = freshStream()
        const first = newEvents(2)
        const firstResult = await store().appendToStream(stream, first, { expectedRevision: 'no_stream' })
        const second = newEvents(2)
        const secondResult = await store().appendToStream(stream, second, { expectedRevision: 1n })
        await store().appendToStream(stream, newEvents(1), { expectedRevision: 3n })

        expect(await store().appendToStream(stream, first, { expectedRevision: 'no_stream' })).toEqual({ ...firstResult, written: false })
        expect(await store().appendToStream(stream, second, { expectedRevision: 1n })).toEqual({ ...secondResult, written: false })
        expect(await store().readStream(stream)).toHaveLength(5)
      })

      it('refuses the same IDs at another place in the stream with EventIdConflictError', async () => {
        const stream = freshStream()
        const first = newEvents(2)
        await store().appendToStream(stream, first, { expectedRevision: 'no_stream' })
        await store().appendToStream(stream, newEvents(1), { expectedRevision: 1n })

        const misplaced = await rejectionOf(store().appendToStream(stream, first, { expectedRevision: 2n }))
        expect(misplaced).toBeInstanceOf(EventIdConflictError)
        expect((misplaced as EventIdConflictError).conflictingEventIds).toEqual(ids(first))
        const reordered = await rejectionOf(store().appendToStream(stream, [...first].reverse(), { expectedRevision: 'no_stream' }))
        expect(reordered).toBeInstanceOf(EventIdConflictError)
        expect(await store().readStream(stream)).toHaveLength(3)
      })

      it('refuses a partial overlap of IDs with EventIdConflictError and writes none of the batch', async () => {
        const stream = freshStream()
        const first = newEvents(2)
        await store().appendToStream(stream, first, { expectedRevision: 'no_stream' })
        const fresh = newEvents(1)[0]!
        const overlapping = [first[0]!, first[1]!, fresh]

        const sameRevision = await rejectionOf(store().appendToStream(stream, overlapping, { expectedRevision: 'no_stream' }))
        expect(sameRevision).toBeInstanceOf(EventIdConflictError)
        expect((sameRevision as EventIdConflictError).conflictingEventIds).toEqual(ids(first))
        const atHead = await rejectionOf(store().appendToStream(stream, [fresh, first[1]!], { expectedRevision: 1n }))
        expect(atHead).toBeInstanceOf(EventIdConflictError)
        expect((atHead as EventIdConflictError).conflictingEventIds).toEqual([first[1]!.eventId])

        expect(ids(await store().readStream(stream))).toEqual(ids(first))
      })

      it('stores one copy when the same batch is appended twice at once', async () => {
        const stream = freshStream()
        const batch = newEvents(3)
        const results = await Promise.all([
          store().appendToStream(stream, batch, { expectedRevision: 'no_stream' }),
          store().appendToStream(stream, batch, { expectedRevision: 'no_stream' }),
        ])
        expect(results.map((result) => result.nextExpectedRevision)).toEqual([2n, 2n])
        expect(results.map((result) => result.position)).toEqual([results[0]!.position, results[0]!.position])
        expect(results.some((result) => result.written)).toBe(true)
        expect(ids(await store().readStream(stream))).toEqual(ids(batch))
      })

      it('lets exactly one of two different batches at the same expected revision win', async () => {
        const stream = freshStream()
        const [a, b] = [newEvents(2), newEvents(2)]
        const settled = await Promise.allSettled([
          store().appendToStream(stream, a, { expectedRevision: 'no_stream' }),
          store().appendToStream(stream, b, { expectedRevision: 'no_stream' }),
        ])
        const won = settled.filter((outcome) => outcome.status === 'fulfilled')
        const lost = settled.filter((outcome) => outcome.status === 'rejected')
        expect(won).toHaveLength(1)
        expect(lost).toHaveLength(1)
        expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(ConcurrencyError)
        const stored = ids(await store().readStream(stream))
        expect([ids(a), ids(b)]).toContainEqual(stored)
      })
    })

    describe('bad input', () => {
      it('refuses an empty batch, a non-UUID event ID and an ID repeated within a batch, and writes nothing', async () => {
        const stream = freshStream()
        await expect(store().appendToStream(stream, [], { expectedRevision: 'no_stream' })).rejects.toThrow(/empty batch/)
        const [good] = newEvents(1)
        await expect(store().appendToStream(stream, [{ ...good!, eventId: 'not-a-uuid' }], { expectedRevision: 'no_stream' })).rejects.toThrow(
          /not-a-uuid.*not a UUID/,
        )
        await expect(store().appendToStream(stream, [good!, { ...good! }], { expectedRevision: 'no_stream' })).rejects.toThrow(/twice/)
        expect(await store().readStream(stream)).toEqual([])
      })
    })

    describe('global reads', () => {
      it('reads the whole log after a position, exclusive, in position order, up to maxCount', async () => {
        const [s1, s2] = [freshStream(), freshStream()]
        const start = await store().appendToStream(s1, newEvents(1), { expectedRevision: 'no_stream' })
        const a = await store().appendToStream(s2, newEvents(2), { expectedRevision: 'no_stream' })
        const b = await store().appendToStream(s1, newEvents(2), { expectedRevision: 0n })

        const after = await store().readAll({ after: start.position })
        const ours = after.filter((event) => event.streamName === s1 || event.streamName === s2)
        expect(ours.map((event) => `${event.streamName}@${event.revision}`)).toEqual([`${s2}@0`, `${s2}@1`, `${s1}@1`, `${s1}@2`])
        expect(after.some((event) => event.position === start.position)).toBe(false)
        expect(ours[1]!.position).toBe(a.position)
        expect(ours[3]!.position).toBe(b.position)
        expectStrictlyIncreasing(positions(after))
        expect(after.every((event) => event.position > start.position)).toBe(true)

        const page = await store().readAll({ after: start.position, maxCount: 2 })
        expect(page).toEqual(after.slice(0, 2))
        const nextPage = await store().readAll({ after: page[1]!.position, maxCount: 2 })
        expect(nextPage).toEqual(after.slice(2, 4))
      })

      it("reads one tenant's log across its streams, in order, and nothing of other tenants", async () => {
        const [tenant, other] = [freshTenant(), freshTenant()]
        const [t1, t2, o1] = [freshStream(tenant), freshStream(tenant), freshStream(other)]
        await store().appendToStream(t1, newEvents(1), { expectedRevision: 'no_stream' })
        await store().appendToStream(o1, newEvents(2), { expectedRevision: 'no_stream' })
        const middle = await store().appendToStream(t2, newEvents(2), { expectedRevision: 'no_stream' })
        await store().appendToStream(t1, newEvents(1), { expectedRevision: 0n })

        const log = await store().readTenantLog(tenant)
        expect(log.map((event) => `${event.streamName}@${event.revision}`)).toEqual([`${t1}@0`, `${t2}@0`, `${t2}@1`, `${t1}@1`])
        expectStrictlyIncreasing(positions(log))
        expect(ids(await store().readTenantLog(tenant, { after: log[1]!.position }))).toEqual(ids(log.slice(2)))
        expect(ids(await store().readTenantLog(tenant, { maxCount: 2 }))).toEqual(ids(log.slice(0, 2)))
        expect((await store().readTenantLog(tenant, { after: middle.position })).map((event) => event.streamName)).toEqual([t1])
        expect((await store().readTenantLog(other)).map((event) => event.streamName)).toEqual([o1, o1])
        expect(await store().readTenantLog(freshTenant())).toEqual([])
        expect(await store().readTenantHead(tenant)).toEqual(log.at(-1))
        expect(await store().readTenantHead(freshTenant())).toBeUndefined()
      })

      it('reads one event type across tenants in position order', async () => {
        const type = `ContractProbe_${randomSuffix()}`
        const [s1, s2] = [freshStream(), freshStream()]
        await store().appendToStream(s1, newEvents(1, type), { expectedRevision: 'no_stream' })
        await store().appendToStream(s2, [...newEvents(1), ...newEvents(1, type)], { expectedRevision: 'no_stream' })
        await store().appendToStream(s1, newEvents(1, type), { expectedRevision: 0n })

        const ofType = await store().readEventType(type)
        expect(ofType.map((event) => `${event.streamName}@${event.revision}`)).toEqual([`${s1}@0`, `${s2}@1`, `${s1}@1`])
        expect(ofType.every((event) => event.type === type)).toBe(true)
        expectStrictlyIncreasing(positions(ofType))
        expect(ids(await store().readEventType(type, { after: ofType[0]!.position, maxCount: 1 }))).toEqual(ids(ofType.slice(1, 2)))
        expect(await store().readEventType(`${type}_none`)).toEqual([])
      })
    })

    describe('tenant sequence', () => {
      it("numbers each tenant's events 1..n in position order, whatever the other tenant appends; other streams get none", async () => {
        const [tenant, other] = [freshTenant(), freshTenant()]
        const [a1, a2, b1] = [freshStream(tenant), freshStream(tenant), freshStream(other)]
        const compliance = complianceStreamName(tenant)
        const batch = newEvents(3)
        // Everything below comes after this marker in the log (a batch's position is its last event's).
        const marker = await store().appendToStream(freshStream(), newEvents(1), { expectedRevision: 'no_stream' })
        await store().appendToStream(a1, batch, { expectedRevision: 'no_stream' })
        await store().appendToStream(b1, newEvents(1), { expectedRevision: 'no_stream' })
        expect((await store().appendToStream(a1, batch, { expectedRevision: 'no_stream' })).written).toBe(false)
        expect((await store().appendToStream(a1, batch, { expectedRevision: 'any' })).written).toBe(false)
        await store().appendToStream(b1, newEvents(5), { expectedRevision: 0n })
        expect(await rejectionOf(store().appendToStream(a1, newEvents(2), { expectedRevision: 0n }))).toBeInstanceOf(ConcurrencyError)
        await store().appendToStream(compliance, newEvents(1), { expectedRevision: 'any' })
        await store().appendToStream(a2, newEvents(1), { expectedRevision: 'no_stream' })
        expect(await rejectionOf(store().appendToStream(b1, newEvents(1), { expectedRevision: 'no_stream' }))).toBeInstanceOf(ConcurrencyError)
        await store().appendToStream(b1, newEvents(20), { expectedRevision: 5n })
        await store().appendToStream(a1, newEvents(2), { expectedRevision: 2n })

        const numbered = store().kind !== 'esdb'
        const expectSequences = (events: readonly RecordedEvent[], count: number) => {
          expect(events).toHaveLength(count)
          expectStrictlyIncreasing(positions(events))
          const expected = Array.from({ length: count }, (_, index) => (numbered ? BigInt(index + 1) : null))
          expect(events.map((event) => event.tenantSequence)).toEqual(expected)
        }
        const tenantLog = await store().readTenantLog(tenant)
        expectSequences(tenantLog, 6)
        expectSequences(await store().readTenantLog(other), 26)

        const everything = await store().readAll({ after: marker.position, maxCount: 10_000 })
        const inTenant = (name: string) => (event: RecordedEvent) => event.streamName.startsWith(`tenant_${name}-`)
        expectSequences(everything.filter(inTenant(tenant)), 6)
        expectSequences(everything.filter(inTenant(other)), 26)
        expect(everything.filter((event) => event.streamName === compliance).map((event) => event.tenantSequence)).toEqual([null])

        const bySequence = new Map(tenantLog.map((event) => [event.eventId, event.tenantSequence]))
        for (const stream of [a1, a2]) {
          const events = await store().readStream(stream)
          expect(events.map((event) => event.tenantSequence)).toEqual(events.map((event) => bySequence.get(event.eventId)))
        }
        expect((await store().readStream(compliance)).map((event) => event.tenantSequence)).toEqual([null])
      })
    })

    describe('append notifications', () => {
      it('calls onAppend listeners after an append, and stops after unsubscribe', async () => {
        // A store that says it cannot notify (notifiesOnAppend: false) only has to accept and drop listeners.
        const notifies = notifiesOnAppend(store())
        let firstCalls = 0
        const unsubscribeFirst = await store().onAppend(() => (firstCalls += 1))
        await store().appendToStream(freshStream(), newEvents(1), { expectedRevision: 'no_stream' })
        if (notifies) await vi.waitFor(() => expect(firstCalls).toBeGreaterThan(0), { timeout: 10_000, interval: 20 })
        await unsubscribeFirst()

        const callsAtUnsubscribe = firstCalls
        let secondCalls = 0
        const unsubscribeSecond = await store().onAppend(() => (secondCalls += 1))
        await store().appendToStream(freshStream(), newEvents(1), { expectedRevision: 'no_stream' })
        if (notifies) await vi.waitFor(() => expect(secondCalls).toBeGreaterThan(0), { timeout: 10_000, interval: 20 })
        expect(firstCalls).toBe(callsAtUnsubscribe)
        await unsubscribeSecond()
        if (!notifies) expect([firstCalls, secondCalls]).toEqual([0, 0])
      })
    })

    describe('soft delete', () => {
      it('hides the stream from every read, then lets it be written again, continuing its revisions', async () => {
        const tenant = freshTenant()
        const type = `ContractProbe_${randomSuffix()}`
        const [stream, other] = [freshStream(tenant), freshStream(tenant)]
        const start = await store().appendToStream(other, newEvents(1), { expectedRevision: 'no_stream' })
        await store().appendToStream(stream, newEvents(3, type), { expectedRevision: 'no_stream' })

        await store().deleteStream(stream, { expectedRevision: 2n })
        expect(await store().readStream(stream)).toEqual([])
        expect(await store().readStream(stream, { direction: 'backwards' })).toEqual([])
        expect((await store().readTenantLog(tenant)).map((event) => event.streamName)).toEqual([other])
        expect(await store().readEventType(type)).toEqual([])
        expect((await store().readAll({ after: start.position })).filter((event) => event.streamName === stream)).toEqual([])
        expect(await store().getStreamMetadata(stream)).toMatchObject({ deleted: true })

        const again = newEvents(2, type)
        const result = await store().appendToStream(stream, again, { expectedRevision: 'no_stream' })
        expect(result).toMatchObject({ nextExpectedRevision: 4n, written: true })
        // EventStoreDB re-hides the deleted events with a metadata write just after the append: poll, do not assume.
        await vi.waitFor(
          async () => expect((await store().readStream(stream)).map((event) => [event.eventId, event.revision])).toEqual([[again[0]!.eventId, 3n], [again[1]!.eventId, 4n]]),
          WAIT,
        )
        expect(ids(await store().readEventType(type))).toEqual(ids(again))
        expect((await store().readTenantLog(tenant)).map((event) => event.streamName)).toEqual([other, stream, stream])
        expect(await store().getStreamMetadata(stream)).toMatchObject({ deleted: false, metadata: { truncateBefore: 3n } })
      })

      it("accepts 'any' or the last revision after a delete, refuses 'stream_exists' and other revisions", async () => {
        const stream = freshStream()
        await store().appendToStream(stream, newEvents(2), { expectedRevision: 'no_stream' })
        await store().deleteStream(stream, { expectedRevision: 'any' })

        const exists = await rejectionOf(store().appendToStream(stream, newEvents(1), { expectedRevision: 'stream_exists' }))
        expect(exists).toBeInstanceOf(ConcurrencyError)
        expect(exists).toMatchObject({ stream, expected: 'stream_exists', actual: 'no_stream' })
        const stale = await rejectionOf(store().appendToStream(stream, newEvents(1), { expectedRevision: 0n }))
        expect(stale).toBeInstanceOf(ConcurrencyError)
        expect(stale).toMatchObject({ expected: 0n, actual: 'no_stream' })
        expect(await store().readStream(stream)).toEqual([])

        expect(await store().appendToStream(stream, newEvents(1), { expectedRevision: 1n })).toMatchObject({ nextExpectedRevision: 2n, written: true })
        await vi.waitFor(async () => expect((await store().readStream(stream)).map((event) => event.revision)).toEqual([2n]), WAIT)
        // Written again, the stream exists: 'no_stream' is refused from now on.
        const recreated = await rejectionOf(store().appendToStream(stream, newEvents(1), { expectedRevision: 'no_stream' }))
        expect(recreated).toMatchObject({ expected: 'no_stream', actual: 2n })
        expect(await store().appendToStream(stream, newEvents(1), { expectedRevision: 'any' })).toMatchObject({ nextExpectedRevision: 3n })
        expect((await store().readStream(stream)).map((event) => event.revision)).toEqual([2n, 3n])
      })

      it('refuses a delete at a stale revision with ConcurrencyError and deletes nothing', async () => {
        const stream = freshStream()
        await store().appendToStream(stream, newEvents(3), { expectedRevision: 'no_stream' })
        const stale = await rejectionOf(store().deleteStream(stream, { expectedRevision: 0n }))
        expect(stale).toBeInstanceOf(ConcurrencyError)
        expect(stale).toMatchObject({ stream, expected: 0n, actual: 2n })
        expect(await rejectionOf(store().deleteStream(stream, { expectedRevision: 'no_stream' }))).toBeInstanceOf(ConcurrencyError)
        expect(await store().readStream(stream)).toHaveLength(3)
        expect(await store().getStreamMetadata(stream)).toMatchObject({ deleted: false, metadataRevision: 'no_metadata' })
      })
    })

    describe('tombstone', () => {
      it('closes a stream for good: appends, reads and stream operations fail with StreamTombstonedError, nothing is written', async () => {
        const tenant = freshTenant()
        const type = `ContractProbe_${randomSuffix()}`
        const [stream, other] = [freshStream(tenant), freshStream(tenant)]
        await store().appendToStream(stream, newEvents(2, type), { expectedRevision: 'no_stream' })
        await store().tombstoneStream(stream, { expectedRevision: 1n })

        const read = await rejectionOf(store().readStream(stream))
        expect(read).toBeInstanceOf(StreamTombstonedError)
        expect(read).toMatchObject({ stream })
        for (const expectedRevision of ['any', 'no_stream', 'stream_exists', 1n] as const) {
          const append = await rejectionOf(store().appendToStream(stream, newEvents(1, type), { expectedRevision }))
          expect(append).toBeInstanceOf(StreamTombstonedError)
          expect(append).toMatchObject({ stream })
        }
        // Tombstoning twice fails like every other write (EventStoreDB's behaviour), and so does everything else.
        expect(await rejectionOf(store().tombstoneStream(stream, { expectedRevision: 'any' }))).toBeInstanceOf(StreamTombstonedError)
        expect(await rejectionOf(store().deleteStream(stream, { expectedRevision: 'any' }))).toBeInstanceOf(StreamTombstonedError)
        expect(await rejectionOf(store().setStreamMetadata(stream, { maxCount: 1 }))).toBeInstanceOf(StreamTombstonedError)
        expect(await rejectionOf(store().getStreamMetadata(stream))).toBeInstanceOf(StreamTombstonedError)

        await store().appendToStream(other, newEvents(1), { expectedRevision: 'no_stream' })
        expect((await store().readTenantLog(tenant)).map((event) => event.streamName)).toEqual([other])
        expect(await store().readEventType(type)).toEqual([])
      })

      it('refuses a tombstone at a stale revision with ConcurrencyError and leaves the stream writable', async () => {
        const stream = freshStream()
        await store().appendToStream(stream, newEvents(2), { expectedRevision: 'no_stream' })
        const stale = await rejectionOf(store().tombstoneStream(stream, { expectedRevision: 0n }))
        expect(stale).toBeInstanceOf(ConcurrencyError)
        expect(stale).toMatchObject({ stream, expected: 0n, actual: 1n })
        expect(await store().appendToStream(stream, newEvents(1), { expectedRevision: 1n })).toMatchObject({ nextExpectedRevision: 2n })
        expect(await store().readStream(stream)).toHaveLength(3)
      })

      it('tombstones a stream name that was never written, so it can never be created', async () => {
        const stream = freshStream()
        await store().tombstoneStream(stream, { expectedRevision: 'no_stream' })
        expect(await rejectionOf(store().appendToStream(stream, newEvents(1), { expectedRevision: 'no_stream' }))).toBeInstanceOf(StreamTombstonedError)
        expect(await rejectionOf(store().readStream(stream))).toBeInstanceOf(StreamTombstonedError)
      })

      it("refuses 'stream_exists' and malformed revisions for deletes with RangeError", async () => {
        const stream = freshStream()
        await store().appendToStream(stream, newEvents(1), { expectedRevision: 'no_stream' })
        const bad = ['stream_exists', -1n, 1] as unknown as ExpectedRevisionForDelete[]
        for (const expectedRevision of bad) {
          await expect(store().deleteStream(stream, { expectedRevision })).rejects.toThrow(RangeError)
          await expect(store().tombstoneStream(stream, { expectedRevision })).rejects.toThrow(RangeError)
        }
        expect(await store().readStream(stream)).toHaveLength(1)
      })
    })

    describe('retention metadata', () => {
      it('reports no metadata for a stream that never had any', async () => {
        expect(await store().getStreamMetadata(freshStream())).toEqual({ metadata: {}, metadataRevision: 'no_metadata', deleted: false })
      })

      it('keeps only the newest maxCount events in every read', async () => {
        const tenant = freshTenant()
        const type = `ContractProbe_${randomSuffix()}`
        const stream = freshStream(tenant)
        const start = await store().appendToStream(freshStream(tenant), newEvents(1), { expectedRevision: 'no_stream' })
        const batch = newEvents(5, type)
        await store().appendToStream(stream, batch, { expectedRevision: 'no_stream' })

        expect(await store().setStreamMetadata(stream, { maxCount: 2 }, { expectedMetadataRevision: 'no_metadata' })).toEqual({ metadataRevision: 0n })
        expect(await store().getStreamMetadata(stream)).toEqual({ metadata: { maxCount: 2 }, metadataRevision: 0n, deleted: false })
        expect(ids(await store().readStream(stream))).toEqual(ids(batch.slice(3)))
        expect(ids(await store().readStream(stream, { fromRevision: 0n }))).toEqual(ids(batch.slice(3)))
        expect(ids(await store().readStream(stream, { direction: 'backwards' }))).toEqual(ids(batch.slice(3)).reverse())
        expect(ids((await store().readTenantLog(tenant)).filter((event) => event.streamName === stream))).toEqual(ids(batch.slice(3)))
        expect(ids(await store().readEventType(type))).toEqual(ids(batch.slice(3)))
        expect(ids((await store().readAll({ after: start.position })).filter((event) => event.streamName === stream))).toEqual(ids(batch.slice(3)))

        const next = newEvents(1, type)
        await store().appendToStream(stream, next, { expectedRevision: 4n })
        expect(ids(await store().readStream(stream))).toEqual([batch[4]!.eventId, next[0]!.eventId])
        expect(ids(await store().readEventType(type))).toEqual([batch[4]!.eventId, next[0]!.eventId])
      })

      it('hides the events below truncateBefore in every read; new metadata replaces the old as a whole', async () => {
        const tenant = freshTenant()
        const stream = freshStream(tenant)
        const batch = newEvents(4)
        await store().appendToStream(stream, batch, { expectedRevision: 'no_stream' })
        await store().setStreamMetadata(stream, { maxCount: 3 })
        const { metadataRevision } = await store().setStreamMetadata(stream, { truncateBefore: 2n }, { expectedMetadataRevision: 0n })
        expect(metadataRevision).toBe(1n)
        expect(await store().getStreamMetadata(stream)).toEqual({ metadata: { truncateBefore: 2n }, metadataRevision: 1n, deleted: false })
        expect((await store().readStream(stream)).map((event) => event.revision)).toEqual([2n, 3n])
        expect(ids(await store().readTenantLog(tenant))).toEqual(ids(batch.slice(2)))
        // The revision numbering is untouched: appends still expect the last revision written.
        await store().appendToStream(stream, newEvents(1), { expectedRevision: 3n })
        expect((await store().readStream(stream)).map((event) => event.revision)).toEqual([2n, 3n, 4n])
      })

      it('hides events older than maxAge seconds from every read', async () => {
        const tenant = freshTenant()
        const stream = freshStream(tenant)
        const old = newEvents(2)
        await store().appendToStream(stream, old, { expectedRevision: 'no_stream' })
        await store().setStreamMetadata(stream, { maxAge: 3600 })
        expect(ids(await store().readStream(stream))).toEqual(ids(old))

        await store().setStreamMetadata(stream, { maxAge: 2 })
        await vi.waitFor(async () => expect(await store().readStream(stream)).toEqual([]), { timeout: 20_000, interval: 100 })
        expect(await store().readTenantLog(tenant)).toEqual([])

        const fresh = newEvents(1)
        await store().appendToStream(stream, fresh, { expectedRevision: 1n })
        expect(ids(await store().readStream(stream))).toEqual(ids(fresh))
        expect(ids(await store().readTenantLog(tenant))).toEqual(ids(fresh))
      })

      it('refuses a stale expected metadata revision with MetadataConcurrencyError and changes nothing', async () => {
        const stream = freshStream()
        await store().appendToStream(stream, newEvents(3), { expectedRevision: 'no_stream' })
        await store().setStreamMetadata(stream, { maxCount: 2 }, { expectedMetadataRevision: 'no_metadata' })

        const again = await rejectionOf(store().setStreamMetadata(stream, { maxCount: 1 }, { expectedMetadataRevision: 'no_metadata' }))
        expect(again).toBeInstanceOf(MetadataConcurrencyError)
        expect(again).toMatchObject({ stream, expected: 'no_metadata', actual: 0n })
        const ahead = await rejectionOf(store().setStreamMetadata(stream, { maxCount: 1 }, { expectedMetadataRevision: 5n }))
        expect(ahead).toMatchObject({ expected: 5n, actual: 0n })
        expect(await store().readStream(stream)).toHaveLength(2)

        const missing = await rejectionOf(store().setStreamMetadata(freshStream(), { maxCount: 1 }, { expectedMetadataRevision: 0n }))
        expect(missing).toMatchObject({ expected: 0n, actual: 'no_metadata' })
        expect(await store().setStreamMetadata(stream, { maxCount: 1 }, { expectedMetadataRevision: 0n })).toEqual({ metadataRevision: 1n })
        expect(await store().setStreamMetadata(stream, {}, { expectedMetadataRevision: 'any' })).toEqual({ metadataRevision: 2n })
        expect(await store().readStream(stream)).toHaveLength(3)
      })

      it('refuses malformed metadata with RangeError naming the field, and writes nothing', async () => {
        const stream = freshStream()
        const bad: [unknown, RegExp][] = [
          [{ maxAge: 0 }, /maxAge/],
          [{ maxCount: 1.5 }, /maxCount/],
          [{ maxCount: '3' }, /maxCount/],
          [{ truncateBefore: -1n }, /truncateBefore/],
          [{ truncateBefore: 3 }, /truncateBefore/],
          [{ maxAgeSeconds: 5 }, /maxAgeSeconds/],
          [null, /object/],
        ]
        for (const [metadata, message] of bad) {
          await expect(store().setStreamMetadata(stream, metadata as StreamMetadata)).rejects.toThrow(message)
        }
        await expect(store().setStreamMetadata(stream, {}, { expectedMetadataRevision: -1n })).rejects.toThrow(RangeError)
        expect(await store().getStreamMetadata(stream)).toEqual({ metadata: {}, metadataRevision: 'no_metadata', deleted: false })
      })
    })

    describe('listing lifecycle state', () => {
      it('lists every stream with retention rules, a soft delete or a tombstone, and no plain stream; EventStoreDB refuses it by name', async () => {
        const [plain, retained, deleted, tombstoned] = [freshStream(), freshStream(), freshStream(), freshStream()]
        for (const stream of [plain, retained, deleted, tombstoned]) await store().appendToStream(stream, newEvents(2), { expectedRevision: 'no_stream' })
        await store().setStreamMetadata(retained, { maxCount: 1 })
        await store().deleteStream(deleted, { expectedRevision: 1n })
        await store().tombstoneStream(tombstoned, { expectedRevision: 1n })
        if (store().kind === 'esdb') {
          const refusal = await rejectionOf(store().listLifecycleStreams())
          expect(refusal).toBeInstanceOf(UnsupportedStoreOperationError)
          expect((refusal as Error).message).toMatch(/listLifecycleStreams is not supported on the esdb event store/)
          return
        }
        const listed = await store().listLifecycleStreams()
        expect(listed).toEqual([...listed].sort())
        expect(listed).toEqual(expect.arrayContaining([retained, deleted, tombstoned]))
        expect(listed).not.toContain(plain)
      })
    })

  })
}
