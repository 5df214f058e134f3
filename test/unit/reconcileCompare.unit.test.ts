import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { attemptFailureEventId, outcomeEventId } from '../../historian/eventIds'
import { REDRIVE_REQUEST_ACTIVITY } from '../../historian/events'
import { compareTask, dropSettledFindings } from '../../historian/reconcile/compareTask'
import { duplicateOutcomeCount } from '../../historian/reconcile/duplicateFindings'
import { eventFactOf } from '../../historian/reconcile/eventFacts'
import type { ReconcileFinding } from '../../historian/reconcile/reconcileFinding'
import type { ActivityFact, ActivityState, EventFact, WorkflowRunFacts } from '../../historian/reconcile/taskFacts'

const WORKFLOW = 'agent-pipeline:acme:task-1'
const RUN = '11111111-1111-4111-8111-111111111111'
const RUN_2 = '22222222-2222-4222-8222-222222222222'
const TYPES: Record<string, string> = { receive: 'AgentTaskReceived', route: 'RoutingModelInvoked', plan: 'PlanCreated', synthesize: 'SynthesisModelInvoked', complete: 'AgentTaskCompleted' }

function activity(activityId: string, state: ActivityState = 'completed'): ActivityFact {
  return { activityId, activityType: `${activityId}Activity`, state, attempt: 1 }
}

function run(activities: ActivityFact[], runId = RUN): WorkflowRunFacts {
  return { workflowId: WORKFLOW, runId, status: 'COMPLETED', activities }
}

let revision = 0n
/** The outcome event an activity records, with its deterministic ID unless `eventId` is given. */
function outcome(activityId: string, options: { runId?: string; n?: number; type?: string; eventId?: string } = {}): EventFact {
  const runId = options.runId ?? RUN
  return {
    eventId: options.eventId ?? outcomeEventId(WORKFLOW, runId, activityId, options.n ?? 0),
    type: options.type ?? TYPES[activityId] ?? 'ToolCallExecuted',
    revision: revision++,
    workflowId: WORKFLOW,
    runId,
    activityId,
    attempt: 1,
    attemptFailure: false,
  }
}

function failedAttempt(activityId: string, attempt: number, eventId = attemptFailureEventId(WORKFLOW, RUN, activityId, attempt)): EventFact {
  return { eventId, type: 'RoutingModelFailed', revision: revision++, workflowId: WORKFLOW, runId: RUN, activityId, attempt, attemptFailure: true }
}

const compare = (runs: WorkflowRunFacts[], events: EventFact[]) => compareTask({ tenantId: 'acme', taskId: 'task-1', runs, events })
const kinds = (findings: readonly ReconcileFinding[]) => findings.map((finding) => [finding.kind, finding.activityId])

const PIPELINE = ['receive', 'route', 'plan', 'tool:t1', 'synthesize', 'complete']

describe('compareTask', () => {
  it('finds nothing when every completed activity recorded its outcome, failed attempts and final failures included', () => {
    const runs = [run([...PIPELINE.map((id) => activity(id)), activity('tool:t2', 'failed')])]
    const events = [outcome('receive'), failedAttempt('route', 1), outcome('route'), outcome('plan'), outcome('tool:t1'), outcome('tool:t2', { type: 'ToolCallFailed' }), outcome('synthesize'), outcome('complete')]
    expect(compare(runs, events)).toEqual([])
  })

  it("leaves operators' records out: redrive requests have no Temporal activity, and two of them are no duplicate", () => {
    const runs = [run(PIPELINE.map((id) => activity(id)))]
    const requests = [1, 2].map((n) => outcome(REDRIVE_REQUEST_ACTIVITY, { type: 'RedriveRequested', eventId: randomUUID(), n }))
    expect(compare(runs, [...PIPELINE.map((id) => outcome(id)), ...requests])).toEqual([])
    // Another event type under that activity ID is still an event without an activity.
    expect(kinds(compare(runs, [...PIPELINE.map((id) => outcome(id)), outcome(REDRIVE_REQUEST_ACTIVITY, { type: 'ToolCallExecuted' })]))).toEqual([['events_without_activity', REDRIVE_REQUEST_ACTIVITY]])
  })

  it('reports a completed activity whose outcome is missing, naming the activity and run', () => {
    const events = PIPELINE.filter((id) => id !== 'plan').map((id) => outcome(id))
    const findings = compare([run(PIPELINE.map((id) => activity(id)))], events)
    expect(findings).toEqual([
      { kind: 'activity_without_events', tenantId: 'acme', taskId: 'task-1', workflowId: WORKFLOW, runId: RUN, activityId: 'plan', detail: 'planActivity completed on attempt 1 but its outcome is not in the stream' },
    ])
  })

  it('counts failed-attempt records as no outcome for a completed activity, and expects nothing of unfinished or failed activities', () => {
    const runs = [run([activity('receive'), activity('route'), activity('plan', 'scheduled'), activity('synthesize', 'failed'), activity('tool:t1', 'timed_out')])]
    const findings = compare(runs, [outcome('receive'), failedAttempt('route', 1)])
    expect(kinds(findings)).toEqual([['activity_without_events', 'route']])
    expect(findings[0]!.detail).toMatch(/only 1 failed-attempt record/)
  })

  it('reports events of an activity the run never scheduled, of an unknown run, and without metadata', () => {
    const forged = outcome('tool:forged')
    const unknownRun = outcome('receive', { runId: RUN_2 })
    const bare: EventFact = { eventId: randomUUID(), type: 'AgentTaskReceived', revision: revision++, attemptFailure: false }
    const findings = compare([run([activity('receive')])], [outcome('receive'), forged, unknownRun, bare])
    expect(findings.map((finding) => [finding.kind, finding.runId, finding.activityId, finding.eventIds])).toEqual([
      ['events_without_activity', RUN, 'tool:forged', [forged.eventId]],
      ['events_without_activity', RUN_2, 'receive', [unknownRun.eventId]],
      ['events_without_activity', undefined, undefined, [bare.eventId]],
    ])
    expect(findings[0]!.detail).toBe('1 event (ToolCallExecuted) name activity tool:forged, which run 11111111-1111-4111-8111-111111111111 never scheduled')
    expect(findings[2]!.detail).toMatch(/lack a workflowId, runId or activityId/)
  })

  it('matches events to the run that wrote them when a workflow has several runs', () => {
    const runs = [run([activity('receive'), activity('route')]), run([activity('plan')], RUN_2)]
    expect(compare(runs, [outcome('receive'), outcome('route'), outcome('plan', { runId: RUN_2 })])).toEqual([])
    const misfiled = outcome('plan')
    expect(kinds(compare(runs, [outcome('receive'), outcome('route'), misfiled]))).toEqual([
      ['activity_without_events', 'plan'],
      ['events_without_activity', 'plan'],
    ])
  })

  it('reports a second outcome of one activity as a duplicate, listing only the surplus event', () => {
    const runs = [run([activity('receive'), activity('route')])]
    const second = outcome('route', { eventId: randomUUID() })
    const findings = compare(runs, [outcome('receive'), outcome('route'), second])
    expect(findings).toEqual([
      { kind: 'duplicate_events', tenantId: 'acme', taskId: 'task-1', workflowId: WORKFLOW, runId: RUN, activityId: 'route', eventIds: [second.eventId], detail: 'activity route recorded its outcome more than once: surplus RoutingModelInvoked' },
    ])
    // The surplus is the event without the deterministic ID, even when it was stored first.
    const early = outcome('route', { eventId: randomUUID() })
    expect(compare(runs, [outcome('receive'), early, outcome('route')])[0]!.eventIds).toEqual([early.eventId])
  })

  it('reports contradicting outcomes and a same-type repeat under deterministic IDs, but accepts a multi-event outcome', () => {
    const runs = [run([activity('route')])]
    const contradiction = outcome('route', { type: 'RoutingModelFailed', eventId: randomUUID() })
    expect(compare(runs, [outcome('route'), contradiction]).map((finding) => finding.eventIds)).toEqual([[contradiction.eventId]])
    const repeat = outcome('route', { n: 1 })
    expect(compare(runs, [outcome('route'), repeat]).map((finding) => finding.eventIds)).toEqual([[repeat.eventId]])
    expect(compare(runs, [outcome('route'), outcome('route', { n: 1, type: 'RouteExplained' })])).toEqual([])
  })

  it('reports a failed attempt recorded twice and an event ID stored twice', () => {
    const runs = [run([activity('route')])]
    const again = failedAttempt('route', 1, randomUUID())
    expect(compare(runs, [failedAttempt('route', 1), again, outcome('route')]).map((finding) => [finding.kind, finding.eventIds, finding.detail])).toEqual([
      ['duplicate_events', [again.eventId], 'activity route recorded failed attempt 1 more than once'],
    ])
    const stored = outcome('route')
    const copy = { ...stored, revision: revision++ }
    const findings = compare(runs, [stored, copy])
    expect(findings.map((finding) => [finding.kind, finding.eventIds])).toEqual([['duplicate_events', [stored.eventId]]])
    expect(findings[0]!.detail).toBe(`event ID stored 2 times, at revisions ${stored.revision}, ${copy.revision}`)
  })

  it('reports events without any workflow run once, listing every event', () => {
    const events = [outcome('receive'), outcome('route')]
    expect(compare([], events)).toEqual([
      {
        kind: 'workflow_missing',
        tenantId: 'acme',
        taskId: 'task-1',
        workflowId: WORKFLOW,
        eventIds: events.map((event) => event.eventId),
        detail: `2 events in the stream, but Temporal has no run of workflow ${WORKFLOW}`,
      },
    ])
  })

  it('reports a missing stream, and each completed activity it lost, only once something completed', () => {
    expect(kinds(compare([run([activity('receive'), activity('route'), activity('plan', 'scheduled')])], []))).toEqual([
      ['stream_missing', undefined],
      ['activity_without_events', 'receive'],
      ['activity_without_events', 'route'],
    ])
    expect(compare([run([activity('receive', 'scheduled')])], [])).toEqual([])
    expect(compare([], [])).toEqual([])
  })
})

describe('duplicateOutcomeCount (verifyRun\'s duplicateOutcomes)', () => {
  const clean = () => [outcome('receive'), failedAttempt('route', 1), outcome('route'), outcome('plan'), outcome('tool:t1')]

  it('counts an activity whose outcome was recorded twice under different event IDs', () => {
    expect(duplicateOutcomeCount(clean())).toBe(0)
    expect(duplicateOutcomeCount([...clean(), outcome('route', { eventId: randomUUID() })])).toBe(1)
    expect(duplicateOutcomeCount([...clean(), outcome('route', { eventId: randomUUID() }), outcome('plan', { eventId: randomUUID() }), outcome('plan', { eventId: randomUUID() })])).toBe(3)
    // A contradicting second outcome counts too; the same activity ID in another run of the workflow does not.
    expect(duplicateOutcomeCount([...clean(), outcome('route', { type: 'RoutingModelFailed', eventId: randomUUID() })])).toBe(1)
    expect(duplicateOutcomeCount([...clean(), outcome('route', { runId: RUN_2 })])).toBe(0)
  })

  it('does not count failed-attempt records, a multi-event outcome or operators\' records', () => {
    expect(duplicateOutcomeCount([...clean(), failedAttempt('route', 2)])).toBe(0)
    expect(duplicateOutcomeCount([...clean(), outcome('route', { n: 1, type: 'RouteExplained' })])).toBe(0)
    const requests = [1, 2].map((n) => outcome(REDRIVE_REQUEST_ACTIVITY, { type: 'RedriveRequested', eventId: randomUUID(), n }))
    expect(duplicateOutcomeCount([...clean(), ...requests])).toBe(0)
  })
})

describe('eventFactOf', () => {
  const recorded = (type: string, data: unknown, metadata: Record<string, unknown>) => ({ eventId: randomUUID(), streamName: 'tenant_acme-task-1', revision: 3n, position: 9n, tenantSequence: 4n, recordedAt: new Date(), type, data, metadata })

  it('reads the writer from the metadata and tells failed-attempt records from outcomes', () => {
    const metadata = { workflowId: WORKFLOW, runId: RUN, activityId: 'route', attempt: 2 }
    expect(eventFactOf(recorded('RoutingModelFailed', { willRetry: true }, metadata))).toMatchObject({ ...metadata, type: 'RoutingModelFailed', revision: 3n, attemptFailure: true })
    expect(eventFactOf(recorded('RoutingModelFailed', { willRetry: false }, metadata)).attemptFailure).toBe(false)
    expect(eventFactOf(recorded('ToolCallFailed', { willRetry: true }, metadata)).attemptFailure).toBe(false)
  })

  it('leaves out metadata fields that are missing or malformed instead of failing', () => {
    const fact = eventFactOf(recorded('SomethingUnknown', null, { workflowId: '', runId: 7, attempt: 'x' }))
    expect(fact).toEqual({ eventId: fact.eventId, type: 'SomethingUnknown', revision: 3n, workflowId: undefined, runId: undefined, activityId: undefined, attempt: undefined, attemptFailure: false, repairFailure: false })
  })
})

describe('dropSettledFindings', () => {
  it('drops lost-event findings that a later read of the stream settles, and keeps everything else', () => {
    const runs = [run([activity('receive'), activity('route'), activity('plan')])]
    const forged = outcome('tool:forged')
    const findings = compare(runs, [outcome('receive'), forged])
    expect(kinds(findings)).toEqual([['activity_without_events', 'route'], ['activity_without_events', 'plan'], ['events_without_activity', 'tool:forged']])
    const later = [outcome('receive'), forged, outcome('route'), failedAttempt('plan', 1)]
    expect(kinds(dropSettledFindings(findings, later))).toEqual([['activity_without_events', 'plan'], ['events_without_activity', 'tool:forged']])
    const missing = compare(runs, [])
    expect(kinds(dropSettledFindings(missing, [outcome('receive'), outcome('route')]))).toEqual([['activity_without_events', 'plan']])
    expect(dropSettledFindings(missing, [])).toEqual(missing)
  })
})
