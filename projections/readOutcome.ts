import { toStoredEvent, type StoredEvent } from '../historian/historian'
import type { RecordedEvent } from '../historian/port'

/** An event as read for a projection: typed, or the error reading it raised (unknown type, failing schema). */
export type ReadOutcome = { readonly recorded: RecordedEvent; readonly stored: StoredEvent } | { readonly recorded: RecordedEvent; readonly error: unknown }

/** Reads a recorded event for the projections (toStoredEvent), keeping the error instead of throwing it. */
export function readRecorded(recorded: RecordedEvent): ReadOutcome {
  try {
    return { recorded, stored: toStoredEvent(recorded) }
  } catch (error) {
    return { recorded, error }
  }
}
