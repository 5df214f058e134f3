import type { EventFact } from './taskFacts'

/** The events one activity of one workflow run recorded (all three IDs undefined: events lacking that metadata). */
export interface ActivityEvents {
  readonly workflowId?: string
  readonly runId?: string
  readonly activityId?: string
  readonly events: EventFact[]
}

/** The map key of one activity of one workflow run. */
export function activityKey(workflowId: string | undefined, runId: string | undefined, activityId: string | undefined): string {
  return JSON.stringify([workflowId ?? null, runId ?? null, activityId ?? null])
}

/** Groups events by the workflow run and activity that wrote them, in stream order; each event ID once. */
export function groupEventsByActivity(events: readonly EventFact[]): Map<string, ActivityEvents> {
  const groups = new Map<string, ActivityEvents>()
  const seen = new Set<string>()
  for (const event of [...events].sort((a, b) => (a.revision < b.revision ? -1 : a.revision > b.revision ? 1 : 0))) {
    if (seen.has(event.eventId)) continue
    seen.add(event.eventId)
    const complete = event.workflowId !== undefined && event.runId !== undefined && event.activityId !== undefined
    const ids = complete ? { workflowId: event.workflowId, runId: event.runId, activityId: event.activityId } : {}
    const key = activityKey(ids.workflowId, ids.runId, ids.activityId)
    const group = groups.get(key)
    if (group) group.events.push(event)
    else groups.set(key, { ...ids, events: [event] })
  }
  return groups
}
