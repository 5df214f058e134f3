import type { Historian, PendingEvent } from '../../historian/historian'
import { appendTaskEvents, TaskEventFactory } from './eventFactory'

/** The events of one whole pipeline run, the way the pipeline records them: 7 events, one failed tool call among them. */
export function taskRunEvents(tenantId: string, taskId: string, startAt?: Date): PendingEvent[] {
  const f = new TaskEventFactory(tenantId, taskId, startAt)
  return [
    f.received(),
    f.routingInvoked(),
    f.planCreated(['search', 'fetch']),
    f.toolExecuted('call-1', 'search', `effect-${taskId}`),
    f.toolFailed('call-2', 'fetch'),
    f.synthesisInvoked(),
    f.completed({ totalTokens: 1010, totalCostUsd: 0.012, toolCallsSucceeded: 1, toolCallsFailed: 1 }),
  ]
}

/**
 * Appends whole pipeline runs for `tenants` tenants (`<prefix>0`, `<prefix>1`, ...) until at least `events` events are
 * in the log, interleaving tenants; returns the last position.
 */
export async function appendTaskRuns(historian: Historian, options: { tenants: number; events: number; prefix?: string }): Promise<bigint> {
  const prefix = options.prefix ?? 'tenant'
  let appended = 0
  let last = 0n
  for (let task = 0; appended < options.events; task++) {
    for (let tenant = 0; tenant < options.tenants && appended < options.events; tenant++) {
      const tenantId = `${prefix}${tenant}`
      const taskId = `task-${task}`
      const events = taskRunEvents(tenantId, taskId)
      last = (await appendTaskEvents(historian, tenantId, taskId, events)).position
      appended += events.length
    }
  }
  return last
}
