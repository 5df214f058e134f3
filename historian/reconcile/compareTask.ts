import { OPERATOR_RECORDED_EVENT_TYPES } from '../events/run'
import { activityKey, groupEventsByActivity } from './activityEventGroups'
import { duplicateFindings } from './duplicateFindings'
import { ReconcileFindingKind, type ReconcileFinding } from './reconcileFinding'
import { ActivityState, type EventFact, type TaskFacts } from './taskFacts'

const runKey = (workflowId: string, runId: string) => JSON.stringify([workflowId, runId])

/** Activity types that only read the stream and record nothing of their own. */
const READ_ONLY_ACTIVITY_TYPES: ReadonlySet<string> = new Set(['sideEffectsToCompensate'])
/**
 * Activity types whose outcome may be the late record of the activity they stand in for: the workflow's record of a
 * compensation that gave up (recordCompensationFailed) returns the compensation's own outcome when that was recorded
 * after all. Such an activity counts as recorded when its run has a compensation outcome.
 */
const STAND_IN_ACTIVITY_TYPES: ReadonlySet<string> = new Set(['recordCompensationFailed'])
const COMPENSATION_OUTCOME_TYPES: ReadonlySet<string> = new Set(['ToolCallCompensated', 'ToolCompensationFailed'])
const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? '' : 's'}`

/**
 * Compares one task's workflow runs (from Temporal's histories) with its stream, and returns every disagreement:
 * - a completed activity with no outcome event recorded by its workflow ID, run ID and activity ID (failed-attempt records
 *   do not count: the activity finished, so its outcome must be there): `activity_without_events`;
 * - events whose workflow run and activity match no activity scheduled in that run's history (records of failed
 *   attempts of a scheduled activity are fine): `events_without_activity`, one finding per activity of a run;
 * - duplicates (see duplicateFindings): `duplicate_events`;
 * - events but no run at all: one `workflow_missing` (not one finding per event);
 * - completed activities but no events at all: `stream_missing`, plus the lost activities one by one.
 * Events an operator's command records (OPERATOR_RECORDED_EVENT_TYPES, e.g. RedriveRequested) have no Temporal activity
 * to match, and are left out; so are activities that only read (READ_ONLY_ACTIVITY_TYPES).
 */
export function compareTask(allFacts: TaskFacts): ReconcileFinding[] {
  const facts: TaskFacts = { ...allFacts, events: allFacts.events.filter((event) => !OPERATOR_RECORDED_EVENT_TYPES.has(event.type)) }
  const task = { tenantId: facts.tenantId, taskId: facts.taskId }
  const findings: ReconcileFinding[] = []
  const completed = facts.runs.flatMap((run) => run.activities.filter((activity) => activity.state === ActivityState.completed).map((activity) => ({ run, activity })))

  if (facts.runs.length === 0 && facts.events.length > 0) {
    const workflowIds = [...new Set(facts.events.map((event) => event.workflowId).filter((id) => id !== undefined))]
    findings.push({
      kind: ReconcileFindingKind.workflowMissing,
      ...task,
      workflowId: workflowIds[0],
      eventIds: facts.events.map((event) => event.eventId),
      detail: `${plural(facts.events.length, 'event')} in the stream, but Temporal has no run of workflow ${workflowIds.join(', ') || '(none named)'}`,
    })
  }
  if (facts.events.length === 0 && completed.length > 0) {
    findings.push({
      kind: ReconcileFindingKind.streamMissing,
      ...task,
      workflowId: completed[0]!.run.workflowId,
      detail: `${plural(completed.length, 'activity')} completed in ${plural(new Set(completed.map(({ run }) => run.runId)).size, 'run')}, but the task's stream has no events`,
    })
  }

  const groups = groupEventsByActivity(facts.events)
  const runHasCompensationOutcome = (workflowId: string, runId: string) =>
    facts.events.some((event) => event.workflowId === workflowId && event.runId === runId && COMPENSATION_OUTCOME_TYPES.has(event.type))
  for (const { run, activity } of completed) {
    if (READ_ONLY_ACTIVITY_TYPES.has(activity.activityType)) continue
    const recorded = groups.get(activityKey(run.workflowId, run.runId, activity.activityId))?.events ?? []
    if (recorded.some((event) => !event.attemptFailure)) continue
    if (STAND_IN_ACTIVITY_TYPES.has(activity.activityType) && runHasCompensationOutcome(run.workflowId, run.runId)) continue
    findings.push({
      kind: ReconcileFindingKind.activityWithoutEvents,
      ...task,
      workflowId: run.workflowId,
      runId: run.runId,
      activityId: activity.activityId,
      detail: `${activity.activityType} completed${activity.attempt === undefined ? '' : ` on attempt ${activity.attempt}`} but its outcome is not in the stream` +
        (recorded.length > 0 ? ` (only ${plural(recorded.length, 'failed-attempt record')})` : ''),
    })
  }

  if (facts.runs.length > 0) {
    const runs = new Map(facts.runs.map((run) => [runKey(run.workflowId, run.runId), run]))
    for (const group of groups.values()) {
      const place = { kind: ReconcileFindingKind.eventsWithoutActivity, ...task, workflowId: group.workflowId, runId: group.runId, activityId: group.activityId, eventIds: group.events.map((event) => event.eventId) }
      const types = [...new Set(group.events.map((event) => event.type))].join(', ')
      if (group.workflowId === undefined || group.runId === undefined || group.activityId === undefined) {
        findings.push({ ...place, detail: `${plural(group.events.length, 'event')} (${types}) lack a workflowId, runId or activityId in their metadata` })
        continue
      }
      const run = runs.get(runKey(group.workflowId, group.runId))
      if (!run) findings.push({ ...place, detail: `${plural(group.events.length, 'event')} (${types}) name run ${group.runId} of workflow ${group.workflowId}, which Temporal does not have` })
      else if (!run.activities.some((activity) => activity.activityId === group.activityId)) {
        findings.push({ ...place, detail: `${plural(group.events.length, 'event')} (${types}) name activity ${group.activityId}, which run ${group.runId} never scheduled` })
      }
    }
  }

  return [...findings, ...duplicateFindings(facts)]
}

/**
 * Drops the findings that a later read of the stream settles: a completed activity whose outcome was appended after the
 * first read (the history was fetched after it), and a missing stream that has events now. Sound because an activity
 * completes in Temporal only after its outcome is stored, so re-reading after the histories were fetched sees it.
 */
export function dropSettledFindings(findings: readonly ReconcileFinding[], laterEvents: readonly EventFact[]): ReconcileFinding[] {
  const recorded = new Set(laterEvents.filter((event) => !event.attemptFailure).map((event) => activityKey(event.workflowId, event.runId, event.activityId)))
  return findings.filter((finding) => {
    if (finding.kind === ReconcileFindingKind.streamMissing) return laterEvents.length === 0
    if (finding.kind !== ReconcileFindingKind.activityWithoutEvents) return true
    return !recorded.has(activityKey(finding.workflowId, finding.runId, finding.activityId))
  })
}
