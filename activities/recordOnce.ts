import type { AnnalistEvent } from '../historian/events'
import { attemptFailureEventId, outcomeEventId, repairFailureEventId } from '../historian/eventIds'
import type { Historian, PendingEvent, StreamTail, TaskStream } from '../historian/historian'
import { ConcurrencyError } from '../historian/port'
import type { ActivityScope } from './activityScope'

/** How many times an append re-reads and retries after losing a race to a concurrent writer of the same stream. */
const MAX_APPEND_RACES = 25

/** The outcome of an activity as recorded in its stream, and whether this attempt was the one that recorded it. */
export interface RecordedOutcome {
  readonly events: readonly AnnalistEvent[]
  readonly eventIds: readonly string[]
  readonly recordedNow: boolean
}

export interface RecordOnceOptions {
  readonly historian: Historian
  readonly scope: ActivityScope
  /** Does the work from the stream as read and returns the outcome events in order. Throwing records nothing. */
  readonly work: (stream: TaskStream) => Promise<AnnalistEvent[]>
}

function outcomeIds(scope: ActivityScope, count: number): string[] {
  return Array.from({ length: count }, (_, n) => outcomeEventId(scope.workflowId, scope.runId, scope.activityId, n))
}

/** The outcome this activity already recorded in the stream, if any: the events whose IDs are its outcome IDs. */
export function findRecordedOutcome(stream: TaskStream, scope: ActivityScope): RecordedOutcome | undefined {
  const firstId = outcomeEventId(scope.workflowId, scope.runId, scope.activityId, 0)
  const first = stream.events.findIndex((stored) => stored.eventId === firstId)
  if (first < 0) return undefined
  const recorded = []
  for (let n = 0; ; n++) {
    const id = outcomeEventId(scope.workflowId, scope.runId, scope.activityId, n)
    const stored = stream.events.find((candidate) => candidate.eventId === id)
    if (!stored) break
    recorded.push(stored)
  }
  return { events: recorded.map((stored) => stored.event), eventIds: recorded.map((stored) => stored.eventId), recordedNow: false }
}

/**
 * Appends `pending` after `tail` (the stream as the caller read it: its revision and hash-chain tail); when another
 * writer got there first, re-reads the stream and either finds these events already recorded (a retry or a zombie
 * attempt of the same activity won the race) or tries again after the new tail. No extra read when there is no race.
 * Returns the stream as re-read when the events were found already recorded, otherwise undefined.
 */
export async function appendOrFind(historian: Historian, scope: ActivityScope, pending: readonly PendingEvent[], tail: StreamTail): Promise<TaskStream | undefined> {
  let after = tail
  for (let race = 0; ; race++) {
    try {
      await historian.appendToTask(scope.tenantId, scope.taskId, pending, after)
      return undefined
    } catch (error) {
      if (!(error instanceof ConcurrencyError) || race >= MAX_APPEND_RACES) throw error
      const stream = await historian.readTask(scope.tenantId, scope.taskId)
      if (stream.events.some((stored) => stored.eventId === pending[0]!.eventId)) return stream
      after = stream
    }
  }
}

/**
 * The idempotent boundary every pipeline activity runs inside:
 * 1. read the task stream and return the outcome if this activity already recorded it (no second model call);
 * 2. do the work;
 * 3. append the outcome with deterministic IDs and an explicit expected revision, re-reading on conflict;
 * 4. return what is recorded, which is the same for every attempt, zombie or retry.
 */
export async function recordOnce({ historian, scope, work }: RecordOnceOptions): Promise<RecordedOutcome> {
  const stream = await historian.readTask(scope.tenantId, scope.taskId)
  const already = findRecordedOutcome(stream, scope)
  if (already) return already

  const events = await work(stream)
  const ids = outcomeIds(scope, events.length)
  const pending = events.map((event, n) => ({ eventId: ids[n]!, event }))
  const reread = await appendOrFind(historian, scope, pending, stream)
  if (reread) return findRecordedOutcome(reread, scope)!
  return { events, eventIds: ids, recordedNow: true }
}

/**
 * Records that a call of this attempt failed and another follows: Temporal's retry, or (`repair`) the failure of the
 * step's repair call made in this attempt. A failed attempt is a fact about that attempt, so its event ID includes the
 * attempt number; recording it twice is still a no-op. Returns the event's ID.
 */
export async function recordAttemptFailure(historian: Historian, scope: ActivityScope, event: AnnalistEvent, kind: 'call' | 'repair' = 'call'): Promise<string> {
  const eventId = (kind === 'repair' ? repairFailureEventId : attemptFailureEventId)(scope.workflowId, scope.runId, scope.activityId, scope.attempt)
  const stream = await historian.readTask(scope.tenantId, scope.taskId)
  if (stream.events.some((stored) => stored.eventId === eventId)) return eventId
  await appendOrFind(historian, scope, [{ eventId, event }], stream)
  return eventId
}
