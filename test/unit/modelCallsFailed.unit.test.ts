import { describe, expect, it } from 'vitest'
import type { StoredEvent, TaskStream } from '../../historian/historian'
import { modelCallsFailed } from '../../activities/runModelStep'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'

function streamOf(pending: readonly { eventId: string; event: StoredEvent['event'] }[]): TaskStream {
  const events = pending.map((p, n) => ({ ...p, revision: BigInt(n), position: BigInt(n + 1), recordedAt: new Date() }) as unknown as StoredEvent)
  return { streamName: 'tenant_acme-task-1', events, revision: BigInt(events.length - 1) } as unknown as TaskStream
}

describe('modelCallsFailed', () => {
  const factory = new TaskEventFactory('acme', 'task-1')
  const stream = streamOf([factory.received(), factory.routingFailed(true, 1), factory.routingFailed(true, 3)])

  it('counts the recorded failed model calls of this run and activity only', () => {
    expect(modelCallsFailed(stream, { runId: factory.runId, activityId: 'route' }, 'RoutingModelFailed')).toBe(2)
  })

  it('does not count another activity, another run or another failure type', () => {
    expect(modelCallsFailed(stream, { runId: factory.runId, activityId: 'plan' }, 'RoutingModelFailed')).toBe(0)
    expect(modelCallsFailed(stream, { runId: 'run-2', activityId: 'route' }, 'RoutingModelFailed')).toBe(0)
    expect(modelCallsFailed(stream, { runId: factory.runId, activityId: 'route' }, 'PlanningModelFailed')).toBe(0)
  })
})
