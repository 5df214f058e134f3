import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { classifyRejectedAppend } from '../../historian/appendConflicts'
import { ConcurrencyError, EventIdConflictError, type NewEvent, type RecordedEvent } from '../../historian/port'

const STREAM = 'tenant_t1-task-1'

function events(count: number): NewEvent[] {
  return Array.from({ length: count }, () => ({ eventId: randomUUID(), type: 'Probe', data: {}, metadata: {} }))
}

/** The stream as stored: `batch` at revisions 0, 1, ... with positions 100, 110, ... */
function stored(batch: readonly NewEvent[]): RecordedEvent[] {
  return batch.map((event, index) => ({
    ...event,
    streamName: STREAM,
    revision: BigInt(index),
    position: 100n + BigInt(index) * 10n,
    tenantSequence: null,
    recordedAt: new Date(0),
  }))
}

function thrown(run: () => unknown): unknown {
  try {
    run()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}

describe('classifyRejectedAppend', () => {
  const first = events(2)
  const second = events(2)
  const stream = stored([...first, ...second])

  it('is a ConcurrencyError naming expected and actual when none of the IDs are stored', () => {
    const error = thrown(() => classifyRejectedAppend(STREAM, events(1), 1n, stream))
    expect(error).toBeInstanceOf(ConcurrencyError)
    expect(error).toMatchObject({ stream: STREAM, expected: 1n, actual: 3n })
  })

  it("reports 'no_stream' as the actual revision of an empty stream", () => {
    expect(thrown(() => classifyRejectedAppend(STREAM, events(1), 'stream_exists', []))).toMatchObject({ actual: 'no_stream' })
  })

  it('is an idempotent no-op when every ID sits, in order, right after the expected revision', () => {
    expect(classifyRejectedAppend(STREAM, first, 'no_stream', stream)).toEqual({ nextExpectedRevision: 1n, position: 110n, written: false })
    expect(classifyRejectedAppend(STREAM, second, 1n, stream)).toEqual({ nextExpectedRevision: 3n, position: 130n, written: false })
    // What matters is the place, not how the stored events were batched.
    expect(classifyRejectedAppend(STREAM, [first[1]!, second[0]!], 0n, stream)).toEqual({ nextExpectedRevision: 2n, position: 120n, written: false })
  })

  it("finds the place from the stored events when the expectation was 'any' or 'stream_exists'", () => {
    expect(classifyRejectedAppend(STREAM, second, 'any', stream)).toMatchObject({ nextExpectedRevision: 3n, written: false })
    expect(classifyRejectedAppend(STREAM, second, 'stream_exists', stream)).toMatchObject({ nextExpectedRevision: 3n, written: false })
  })

  it('is an EventIdConflictError when only some of the IDs are stored', () => {
    const fresh = events(1)[0]!
    const error = thrown(() => classifyRejectedAppend(STREAM, [second[0]!, second[1]!, fresh], 1n, stream))
    expect(error).toBeInstanceOf(EventIdConflictError)
    expect((error as EventIdConflictError).conflictingEventIds).toEqual(second.map((event) => event.eventId))
  })

  it('is an EventIdConflictError when the IDs are stored at another revision or in another order', () => {
    expect(thrown(() => classifyRejectedAppend(STREAM, second, 'no_stream', stream))).toBeInstanceOf(EventIdConflictError)
    expect(thrown(() => classifyRejectedAppend(STREAM, first, 2n, stream))).toBeInstanceOf(EventIdConflictError)
    expect(thrown(() => classifyRejectedAppend(STREAM, [...first].reverse(), 'no_stream', stream))).toBeInstanceOf(EventIdConflictError)
  })
})
