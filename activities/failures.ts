import { ApplicationFailure } from '@temporalio/activity'
import { EventSchemaError, FailureType, UnknownEventTypeError } from '../historian/events'
import { EventIdConflictError } from '../historian/port'
import { InvalidIdentifierError } from '../historian/streams'
import { waitingOutStoreOutages } from './storeOutage'

/** Failures no retry can fix: bad input or a broken invariant. Everything else stays retryable. */
export function toApplicationFailure(error: unknown): unknown {
  if (error instanceof ApplicationFailure) return error
  const nonRetryable = (type: FailureType) => ApplicationFailure.create({ message: (error as Error).message, type, nonRetryable: true, cause: error as Error })
  if (error instanceof InvalidIdentifierError) return nonRetryable(FailureType.invalidIdentifier)
  if (error instanceof EventSchemaError) return nonRetryable(FailureType.eventSchemaInvalid)
  if (error instanceof UnknownEventTypeError) return nonRetryable(FailureType.unknownEventType)
  if (error instanceof EventIdConflictError) return nonRetryable(FailureType.eventIdConflict)
  return error
}

/**
 * Wraps an activity so domain errors cross the Temporal boundary as typed ApplicationFailures, and so an event-store
 * outage is waited out inside the attempt instead of spending one (waitingOutStoreOutages).
 */
export function translatingFailures<A extends unknown[], R>(activity: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await waitingOutStoreOutages(() => activity(...args))
    } catch (error) {
      throw toApplicationFailure(error)
    }
  }
}

/** Thrown when recorded events contradict what a step needs, e.g. synthesis without a plan. */
export function brokenInvariant(message: string): ApplicationFailure {
  return ApplicationFailure.create({ message, type: FailureType.brokenInvariant, nonRetryable: true })
}
