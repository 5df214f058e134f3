import { ConcurrencyError, EventIdConflictError, type AppendResult, type ExpectedRevision, type NewEvent, type RecordedEvent } from './port'

/**
 * Decides what an append that did not match the stream's revision really was, from the events already in the stream:
 * an idempotent repeat (every ID stored, in order, right after the expected revision), a partial or misplaced repeat
 * (EventIdConflictError), or a plain concurrency conflict. Shared by every adapter so they agree exactly.
 */
export function classifyRejectedAppend(
  stream: string,
  batch: readonly NewEvent[],
  expected: ExpectedRevision,
  stored: readonly RecordedEvent[],
): AppendResult {
  const storedById = new Map(stored.map((event) => [event.eventId, event]))
  const repeated = batch.filter((event) => storedById.has(event.eventId))
  const actual = stored.length === 0 ? 'no_stream' : stored[stored.length - 1]!.revision
  if (repeated.length === 0) throw new ConcurrencyError(stream, expected, actual)

  const firstRevision = expected === 'no_stream' ? 0n : typeof expected === 'bigint' ? expected + 1n : storedById.get(batch[0]!.eventId)?.revision
  const inPlace =
    repeated.length === batch.length &&
    firstRevision !== undefined &&
    batch.every((event, index) => storedById.get(event.eventId)?.revision === firstRevision + BigInt(index))
  if (!inPlace) throw new EventIdConflictError(stream, repeated.map((event) => event.eventId))

  const last = storedById.get(batch[batch.length - 1]!.eventId)!
  return { nextExpectedRevision: last.revision, position: last.position, written: false }
}
