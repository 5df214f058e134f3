import { attemptFailureEventId, outcomeEventId, repairFailureEventId } from '../eventIds'
import { OPERATOR_RECORDED_EVENT_TYPES } from '../events/run'
import { groupEventsByActivity, type ActivityEvents } from './activityEventGroups'
import { ReconcileFindingKind, type ReconcileFinding } from './reconcileFinding'
import type { EventFact, TaskFacts } from './taskFacts'

/** Event IDs stored more than once in the stream. */
function repeatedEventIds(facts: TaskFacts): ReconcileFinding[] {
  const byId = new Map<string, EventFact[]>()
  for (const event of facts.events) byId.set(event.eventId, [...(byId.get(event.eventId) ?? []), event])
  return [...byId.values()]
    .filter((copies) => copies.length > 1)
    .map((copies) => ({
      kind: ReconcileFindingKind.duplicateEvents,
      tenantId: facts.tenantId,
      taskId: facts.taskId,
      workflowId: copies[0]!.workflowId,
      runId: copies[0]!.runId,
      activityId: copies[0]!.activityId,
      eventIds: [copies[0]!.eventId],
      detail: `event ID stored ${copies.length} times, at revisions ${copies.map((copy) => String(copy.revision)).join(', ')}`,
    }))
}

/**
 * The outcome events of one activity beyond its one outcome. An activity's outcome is the events it appended with the
 * deterministic IDs `outcomeEventId(workflowId, runId, activityId, n)`, of distinct types; any further outcome event (a
 * second one of a type, or one with another ID next to the outcome) is a duplicate. Events with expected IDs count first.
 */
function surplusOutcomes(group: ActivityEvents): EventFact[] {
  const outcomes = group.events.filter((event) => !event.attemptFailure)
  if (outcomes.length < 2 || group.workflowId === undefined || group.runId === undefined || group.activityId === undefined) return []
  const { workflowId, runId, activityId } = group
  const expected = new Map(outcomes.map((_, n) => [outcomeEventId(workflowId, runId, activityId, n), n]))
  const rank = (event: EventFact) => expected.get(event.eventId) ?? outcomes.length
  const ordered = outcomes.map((event, index) => ({ event, index })).sort((a, b) => rank(a.event) - rank(b.event) || a.index - b.index).map(({ event }) => event)
  const kept: EventFact[] = []
  const surplus: EventFact[] = []
  for (const event of ordered) {
    const repeatsType = kept.some((other) => other.type === event.type)
    if (kept.length > 0 && (repeatsType || !expected.has(event.eventId))) surplus.push(event)
    else kept.push(event)
  }
  return surplus
}

/**
 * The outcome events recorded beyond each activity's one outcome (see surplusOutcomes), summed over the activities of
 * every workflow run in `events`. Records of failed attempts and events an operator's command records
 * (OPERATOR_RECORDED_EVENT_TYPES, e.g. RedriveRequested) are not outcomes and never count.
 */
export function duplicateOutcomeCount(events: readonly EventFact[]): number {
  const recordedByActivities = events.filter((event) => !OPERATOR_RECORDED_EVENT_TYPES.has(event.type))
  return [...groupEventsByActivity(recordedByActivities).values()].reduce((sum, group) => sum + surplusOutcomes(group).length, 0)
}

/**
 * Failed-call records beyond one per attempt and kind: an attempt records at most its failed call and, when the step's
 * repair ran in the same attempt, the repair's failure. The one with the deterministic ID counts first.
 */
function surplusAttemptRecords(group: ActivityEvents): EventFact[] {
  const { workflowId, runId, activityId } = group
  const deterministic = (event: EventFact) =>
    workflowId !== undefined &&
    runId !== undefined &&
    activityId !== undefined &&
    event.attempt !== undefined &&
    event.eventId === (event.repairFailure ? repairFailureEventId : attemptFailureEventId)(workflowId, runId, activityId, event.attempt)
  const records = group.events.filter((event) => event.attemptFailure)
  const seen = new Set<string>()
  const surplus: EventFact[] = []
  for (const event of [...records.filter(deterministic), ...records.filter((event) => !deterministic(event))]) {
    const key = `${String(event.attempt)}:${event.repairFailure ? 'repair' : 'call'}`
    if (seen.has(key)) surplus.push(event)
    seen.add(key)
  }
  return surplus
}

/**
 * Duplicates in one task's stream: an event ID stored twice, an activity of a run whose outcome is recorded twice
 * (e.g. two RoutingModelInvoked for `route`), or one failed attempt recorded twice. Each finding lists the surplus events.
 */
export function duplicateFindings(facts: TaskFacts): ReconcileFinding[] {
  const findings = repeatedEventIds(facts)
  for (const group of groupEventsByActivity(facts.events).values()) {
    const place = { kind: ReconcileFindingKind.duplicateEvents, tenantId: facts.tenantId, taskId: facts.taskId, workflowId: group.workflowId, runId: group.runId, activityId: group.activityId }
    const outcomes = surplusOutcomes(group)
    if (outcomes.length > 0) {
      const types = outcomes.map((event) => event.type).join(', ')
      findings.push({ ...place, eventIds: outcomes.map((event) => event.eventId), detail: `activity ${group.activityId} recorded its outcome more than once: surplus ${types}` })
    }
    const attempts = surplusAttemptRecords(group)
    if (attempts.length > 0) {
      const which = attempts.map((event) => event.attempt ?? '?').join(', ')
      findings.push({ ...place, eventIds: attempts.map((event) => event.eventId), detail: `activity ${group.activityId} recorded failed attempt ${which} more than once` })
    }
  }
  return findings
}
