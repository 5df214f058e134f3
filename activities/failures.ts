import { ApplicationFailure } from '@temporalio/activity'
import { EventSchemaError, FailureType, UnknownEventTypeError } from '../historian/events'
import { EventIdConflictError } from '../historian/port'
import { InvalidIdentifierError } from '../historian/streams'

/**
 * Failures no retry can fix: bad input or a broken invariant. Everything else stays retryable. Applied to every activity
 * by FailureTranslationInterceptor (activities/activityInterceptors.ts).
 */
export function toApplicationFailure(error: unknown): unknown {
  if (error instanceof ApplicationFailure) return error
  const nonRetryable = (type: FailureType) => ApplicationFailure.create({ message: (error as Error).message, type, nonRetryable: true, cause: error as Error })
  if (error instanceof InvalidIdentifierError) return nonRetryable(FailureType.invalidIdentifier)
  if (error instanceof EventSchemaError) return nonRetryable(FailureType.eventSchemaInvalid)
  if (error instanceof UnknownEventTypeError) return nonRetryable(FailureType.unknownEventType)
  if (error instanceof EventIdConflictError) return nonRetryable(FailureType.eventIdConflict)
  return error
}

/** Thrown when recorded events contradict what a step needs, e.g. synthesis without a plan. */
export function brokenInvariant(message: string): ApplicationFailure {
  return ApplicationFailure.create({ message, type: FailureType.brokenInvariant, nonRetryable: true })
}
