import type { PendingEvent } from '../../historian/historian'
import type { Historian } from '../../historian/historian'
import { auditTimelineProjection } from '../../projections/auditTimeline/projection'
import { taskSummaryProjection } from '../../projections/taskSummary/projection'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'

/** The two read models the audit, report and export tests read. */
export const auditProjections = () => [auditTimelineProjection(), taskSummaryProjection()]

/** The same pending event, recorded by another Temporal attempt of its activity. */
export function atAttempt(pending: PendingEvent, attempt: number): PendingEvent {
  return { ...pending, event: { ...pending.event, metadata: { ...pending.event.metadata, attempt } } as PendingEvent['event'] }
}

/** The same model event with another model version and prompt template version. */
export function withVersions(pending: PendingEvent, modelVersion: string, templateVersion: string): PendingEvent {
  const data = pending.event.data as { model: Record<string, unknown>; prompt: Record<string, unknown> }
  return {
    ...pending,
    event: { ...pending.event, data: { ...data, model: { ...data.model, modelVersion }, prompt: { ...data.prompt, templateVersion } } } as PendingEvent['event'],
  }
}

/**
 * The audit scenario (`occurredAt` one second apart from each task's start):
 * - `task-a` (2026-01-15T09:00Z, 8 events): routes, plans two tools, one tool succeeds with a side effect and one fails,
 *   synthesis fails once (attempt 1) and succeeds on attempt 2, completes. Attempts: 7 activities, synthesize twice = 8.
 * - `task-b` (2026-01-16T09:00Z, 4 events): routing times out on attempts 1 and 2, then the task fails. Attempts 4.
 * - `task-c` (2026-01-17T09:00Z, 5 events): plans nothing; its planning step was retried after a crash (recorded on
 *   attempt 3), and synthesis used model version 2026-03 with prompt template version 2. Attempts 1+1+3+1+1 = 7.
 */
export async function appendAuditScenario(historian: Historian, tenantId: string): Promise<void> {
  const a = new TaskEventFactory(tenantId, 'task-a', new Date('2026-01-15T09:00:00.000Z'))
  await appendTaskEvents(historian, tenantId, 'task-a', [
    a.received(),
    a.routingInvoked('research'),
    a.planCreated(['search', 'fetch']),
    a.toolExecuted('call-1', 'search', 'side-effect-1'),
    a.toolFailed('call-2', 'fetch'),
    a.synthesisFailed(true, 1),
    atAttempt(a.synthesisInvoked(), 2),
    a.completed({ totalTokens: 1010, totalCostUsd: 0.012, toolCallsSucceeded: 1, toolCallsFailed: 1 }),
  ])
  const b = new TaskEventFactory(tenantId, 'task-b', new Date('2026-01-16T09:00:00.000Z'))
  await appendTaskEvents(historian, tenantId, 'task-b', [b.received(), b.routingFailed(true, 1), b.routingFailed(false, 2), b.failed('route', 'MODEL_TIMEOUT')])
  const c = new TaskEventFactory(tenantId, 'task-c', new Date('2026-01-17T09:00:00.000Z'))
  await appendTaskEvents(historian, tenantId, 'task-c', [
    c.received(),
    c.routingInvoked('general'),
    atAttempt(c.planCreated([]), 3),
    withVersions(c.synthesisInvoked('Nothing to look up.'), '2026-03', '2'),
    c.completed({ totalTokens: 110 + 340 + 560, totalCostUsd: 0.012, toolCallsSucceeded: 0, toolCallsFailed: 0 }),
  ])
}
