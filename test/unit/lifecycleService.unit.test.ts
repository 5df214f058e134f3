import { describe, expect, it } from 'vitest'
import { InMemoryEventStore } from '../../historian/adapters/memoryEventStore'
import { Historian } from '../../historian/historian'
import { reconcileLifecycle, recordLifecycleDecision } from '../../historian/lifecycle/lifecycleService'
import type { LifecycleDecision } from '../../historian/events'
import { taskStreamName } from '../../historian/streams'
import { randomKeyRing } from '../support/databases'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'

/** The lifecycle service through the port only, on the in-memory store (the same path EventStoreDB takes). */
describe('lifecycle decisions on the in-memory store', () => {
  async function seeded(): Promise<Historian> {
    const historian = new Historian(new InMemoryEventStore(), { keyRing: randomKeyRing() })
    const f = new TaskEventFactory('acme', 'task-a')
    await historian.appendToTask('acme', 'task-a', [f.received(), f.routingInvoked(), f.planCreated(), f.toolExecuted()], { revision: 'no_stream' })
    return historian
  }
  const decide = (historian: Historian, decision: LifecycleDecision) =>
    recordLifecycleDecision(historian, { tenantId: 'acme', taskId: 'task-a', decision, decidedBy: 'dpo', reason: 'policy P-1' })
  const stream = taskStreamName('acme', 'task-a')

  it.each<[string, LifecycleDecision[], number]>([
    ['a soft delete', [{ kind: 'soft_delete' }], 0],
    ['a truncation, then retention', [{ kind: 'truncate', before: 1 }, { kind: 'retain', maxCount: 2 }], 2],
    ['retention, then a tombstone', [{ kind: 'retain', maxAgeSeconds: 600 }, { kind: 'tombstone' }], -1],
  ])('applies %s so that the store equals what the decisions derive', async (_name, decisions, visible) => {
    const historian = await seeded()
    for (const decision of decisions) expect((await decide(historian, decision)).recorded).toBe(true)
    expect((await reconcileLifecycle(historian.store, { heal: false })).streams).toEqual([{ stream }])
    if (visible < 0) await expect(historian.store.readStream(stream)).rejects.toThrow(/tombstoned/)
    else expect(await historian.store.readStream(stream)).toHaveLength(visible)
  })

  it('finds rules set on the store behind the decisions, and heals them', async () => {
    const historian = await seeded()
    await decide(historian, { kind: 'retain', maxCount: 3 })
    await historian.store.setStreamMetadata(stream, { maxCount: 1 })
    expect((await reconcileLifecycle(historian.store, { heal: false })).streams).toEqual([{ stream, drift: 'the store has maxCount 1, the decisions maxCount 3' }])
    expect((await reconcileLifecycle(historian.store, { heal: true })).healed).toEqual([stream])
    expect(await historian.store.readStream(stream)).toHaveLength(3)
  })
})
