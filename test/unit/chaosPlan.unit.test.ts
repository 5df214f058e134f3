import { describe, expect, it } from 'vitest'
import { matchFault } from '../../dev/faults/faultPlan'
import { CHAOS_FAULT_KINDS, chaosPlan, externalFaultCounts, parseFaultKinds, UnknownFaultKindError } from '../../dev/chaos/chaosPlan'

const all = parseFaultKinds(CHAOS_FAULT_KINDS.join(','))

describe('chaos plan', () => {
  it('is the same for the same seed and different for another', () => {
    const plan = chaosPlan({ seed: 42, runTag: 'chaos42', tenants: 4, tasksPerTenant: 25, kinds: all })
    expect(chaosPlan({ seed: 42, runTag: 'chaos42', tenants: 4, tasksPerTenant: 25, kinds: all })).toEqual(plan)
    expect(chaosPlan({ seed: 43, runTag: 'chaos42', tenants: 4, tasksPerTenant: 25, kinds: all }).schedule).not.toEqual(plan.schedule)
    expect(plan.tasks).toHaveLength(100)
    expect(new Set(plan.tasks.map((task) => `${task.tenantId}/${task.taskId}`)).size).toBe(100)
  })

  it('schedules each external kind the set number of times, in firing order, within 70% of the expected model calls', () => {
    const plan = chaosPlan({ seed: 7, runTag: 'c', tenants: 2, tasksPerTenant: 6, kinds: all })
    const counts = externalFaultCounts(12)
    for (const kind of ['worker', 'projector', 'postgres', 'temporal'] as const) expect(plan.schedule.filter((fault) => fault.kind === kind)).toHaveLength(counts[kind])
    const at = plan.schedule.map((fault) => fault.atModelCall)
    expect(at).toEqual([...at].sort((a, b) => a - b))
    for (const call of at) expect(call).toBeGreaterThanOrEqual(1)
    for (const call of at) expect(call).toBeLessThanOrEqual(Math.ceil(12 * 3 * 0.7))
  })

  it('always hits one model call and one account lookup on their first attempt, besides the seeded rates', () => {
    const plan = chaosPlan({ seed: 99, runTag: 'c', tenants: 2, tasksPerTenant: 6, kinds: all })
    const certainModel = plan.faultPlan.rules.find((rule) => rule.kind === 'timeout' && rule.taskId !== undefined)!
    expect(matchFault(plan.faultPlan, { target: certainModel.target, tenantId: certainModel.tenantId!, taskId: certainModel.taskId!, attempt: 1 })?.kind).toBe('timeout')
    const certainTool = plan.faultPlan.rules.find((rule) => rule.target === 'tool:lookup_account' && rule.taskId !== undefined)!
    expect(plan.tasks.find((task) => task.taskId === certainTool.taskId && task.tenantId === certainTool.tenantId)?.input).toMatch(/look up account/i)
    expect(plan.faultPlan.rules.filter((rule) => rule.rate !== undefined).every((rule) => rule.seed === 99)).toBe(true)
  })

  it('injects only the kinds asked for, and refuses unknown kinds', () => {
    const plan = chaosPlan({ seed: 1, runTag: 'c', tenants: 1, tasksPerTenant: 3, kinds: parseFaultKinds('worker, temporal') })
    expect(new Set(plan.schedule.map((fault) => fault.kind))).toEqual(new Set(['worker', 'temporal']))
    expect(plan.faultPlan.rules).toEqual([])
    expect(parseFaultKinds('')).toEqual(new Set())
    expect(() => parseFaultKinds('worker,meteor')).toThrow(UnknownFaultKindError)
  })
})
