import { describe, expect, it } from 'vitest'
import { verifyRun } from '../../cli/runtime/verifyRun'
import type { TaskRef } from '../../workflows/api'
import { DATABASE_BACKENDS, historianPerTest } from '../support/databases'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'

const FIGURES = { totalTokens: 850, totalCostUsd: 0.012, toolCallsSucceeded: 1, toolCallsFailed: 0 }

describe.each(DATABASE_BACKENDS)('verifyRun on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const verify = (tasks: readonly TaskRef[]) => verifyRun({ historian: fixture.historian, pool: fixture.database.pool, tasks, ledger: [], keyRing: fixture.keyRing })

  it('counts an activity outcome recorded a second time under another event ID; a retried call and a clean task count none', async () => {
    const clean: TaskRef = { tenantId: 'acme', taskId: 'task-clean' }
    const f = new TaskEventFactory(clean.tenantId, clean.taskId)
    await appendTaskEvents(fixture.historian, clean.tenantId, clean.taskId, [f.received(), f.routingFailed(true), f.routingInvoked(), f.planCreated(['search']), f.toolExecuted(), f.synthesisInvoked(), f.completed(FIGURES)])
    expect(await verify([clean])).toMatchObject({ eventsAppended: 7, duplicateOutcomes: 0, tasksWithoutTerminalEvent: 0, chainsIntact: true })

    // The routing step ran again after its outcome was stored and recorded another one: a new event ID, so the store's
    // unique index lets it in, and only the count by activity finds it.
    const twice: TaskRef = { tenantId: 'acme', taskId: 'task-twice' }
    const g = new TaskEventFactory(twice.tenantId, twice.taskId)
    await appendTaskEvents(fixture.historian, twice.tenantId, twice.taskId, [g.received(), g.routingInvoked(), g.routingInvoked('support'), g.planCreated(['search']), g.planCreated(['fetch'])])
    expect(await verify([twice])).toMatchObject({ eventsAppended: 5, duplicateOutcomes: 2, tasksWithoutTerminalEvent: 1, chainsIntact: true })
    expect((await verify([clean, twice])).duplicateOutcomes).toBe(2)
  })
})
