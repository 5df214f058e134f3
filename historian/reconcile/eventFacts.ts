import { isModelFailedEventType } from '../events/catalogue'
import type { RecordedEvent } from '../port'
import type { EventFact } from './taskFacts'

const text = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined)
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null

/**
 * Whether a stored event records one failed model call that another call of the step followed (Temporal's retry, or the
 * step's repair call) rather than an activity's outcome: a model failure with `willRetry: true` (docs/event-catalog.md).
 * Everything else an activity writes is its outcome.
 */
export function isAttemptFailureRecord(type: string, data: unknown): boolean {
  return isModelFailedEventType(type) && isRecord(data) && data.willRetry === true
}

/**
 * The reconciliation facts of one stored event, read from its raw metadata so that an event the catalog cannot read
 * (unknown type, missing fields) is still reconciled rather than stopping the check.
 */
export function eventFactOf(recorded: RecordedEvent): EventFact {
  const metadata = isRecord(recorded.metadata) ? recorded.metadata : {}
  const attempt = metadata.attempt
  return {
    eventId: recorded.eventId,
    type: recorded.type,
    revision: recorded.revision,
    workflowId: text(metadata.workflowId),
    runId: text(metadata.runId),
    activityId: text(metadata.activityId),
    attempt: typeof attempt === 'number' && Number.isInteger(attempt) ? attempt : undefined,
    attemptFailure: isAttemptFailureRecord(recorded.type, recorded.data),
    repairFailure: isAttemptFailureRecord(recorded.type, recorded.data) && isRecord(recorded.data) && recorded.data.isRepair === true,
  }
}
