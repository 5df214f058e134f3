import { describe, expect, it } from 'vitest'
import { FaultPlanError, faultDraw, faultPlanFromEnv, matchFault, parseFaultPlan } from '../../dev/faults/faultPlan'

describe('fault plan', () => {
  it('defaults attempts to the first attempt and carries crash_after_append', () => {
    const plan = parseFaultPlan({ rules: [{ target: 'planning', kind: 'crash_after_append' }] })
    expect(plan.rules[0]).toEqual({ target: 'planning', kind: 'crash_after_append', attempts: [1] })
  })

  it('matches on target, tenant, task and attempt; the first matching rule wins', () => {
    const plan = parseFaultPlan({
      rules: [
        { target: 'routing', kind: 'timeout', tenantId: 'acme', attempts: [1, 2] },
        { target: 'routing', kind: 'malformed' },
        { target: 'tool:lookup_account', kind: 'malformed', taskId: 'task-7' },
      ],
    })
    const probe = { target: 'routing', tenantId: 'acme', taskId: 'task-1', attempt: 1 }
    expect(matchFault(plan, probe)?.kind).toBe('timeout')
    expect(matchFault(plan, { ...probe, attempt: 2 })?.kind).toBe('timeout')
    expect(matchFault(plan, { ...probe, attempt: 3 })).toBeUndefined()
    expect(matchFault(plan, { ...probe, tenantId: 'globex' })?.kind).toBe('malformed')
    expect(matchFault(plan, { ...probe, target: 'synthesis' })).toBeUndefined()
    const tool = { target: 'tool:lookup_account', tenantId: 'globex', taskId: 'task-7', attempt: 1 }
    expect(matchFault(plan, tool)?.kind).toBe('malformed')
    expect(matchFault(plan, { ...tool, taskId: 'task-8' })).toBeUndefined()
    expect(matchFault(undefined, probe)).toBeUndefined()
  })

  it('rejects unknown kinds, bad targets, misspelled fields and non-positive attempts', () => {
    expect(() => parseFaultPlan({ rules: [{ target: 'routing', kind: 'explode' }] })).toThrow(/rules\.0\.kind/)
    expect(() => parseFaultPlan({ rules: [{ target: 'lookup_account', kind: 'timeout' }] })).toThrow(/rules\.0\.target/)
    expect(() => parseFaultPlan({ rules: [{ target: 'routing', kind: 'timeout', attempt: [2] }] })).toThrow(/attempt/)
    expect(() => parseFaultPlan({ rules: [{ target: 'routing', kind: 'timeout', attempts: [0] }] })).toThrow(FaultPlanError)
  })

  it('reads ANNALIST_FAULTS, treating unset or empty as no faults', () => {
    expect(faultPlanFromEnv({})).toEqual({ rules: [] })
    expect(faultPlanFromEnv({ ANNALIST_FAULTS: '  ' })).toEqual({ rules: [] })
    const plan = faultPlanFromEnv({ ANNALIST_FAULTS: '{"rules":[{"target":"synthesis","kind":"context_length","attempts":[1,2,3]}]}' })
    expect(plan.rules).toEqual([{ target: 'synthesis', kind: 'context_length', attempts: [1, 2, 3] }])
  })

  it('names ANNALIST_FAULTS when it is not JSON or not a plan', () => {
    expect(() => faultPlanFromEnv({ ANNALIST_FAULTS: '{rules:' })).toThrow(/ANNALIST_FAULTS is not a valid fault plan: not valid JSON/)
    try {
      faultPlanFromEnv({ ANNALIST_FAULTS: '{"rules":[{"target":"routing"}]}' })
      expect.unreachable('should have thrown')
    } catch (error) {
      expect(error).toBeInstanceOf(FaultPlanError)
      expect((error as FaultPlanError).source).toBe('ANNALIST_FAULTS')
      expect((error as FaultPlanError).problems.join()).toMatch(/rules\.0\.kind/)
    }
  })

  it('hits a seeded share of calls with a rate: the same calls for the same seed, other calls for another seed', () => {
    const rule = { target: 'routing', kind: 'timeout', attempts: [1, 2, 3], rate: 0.25, seed: 7 } as const
    const plan = parseFaultPlan({ rules: [rule] })
    const probes = Array.from({ length: 2_000 }, (_, i) => ({ target: 'routing', tenantId: `t${i % 5}`, taskId: `task-${i}`, attempt: 1 + (i % 3) }))
    const hits = probes.filter((probe) => matchFault(plan, probe) !== undefined)
    expect(hits.length / probes.length).toBeGreaterThan(0.2)
    expect(hits.length / probes.length).toBeLessThan(0.3)
    // Deterministic: a second plan parsed from the same JSON hits exactly the same calls (as another worker process would).
    const again = parseFaultPlan(JSON.parse(JSON.stringify(plan)))
    expect(probes.filter((probe) => matchFault(again, probe) !== undefined)).toEqual(hits)
    for (const probe of hits) expect(faultDraw(rule, probe)).toBeLessThan(0.25)
    // Another seed picks other calls.
    const reseeded = parseFaultPlan({ rules: [{ ...rule, seed: 8 }] })
    expect(probes.filter((probe) => matchFault(reseeded, probe) !== undefined)).not.toEqual(hits)
    // Rate 0 never hits, rate 1 always does; the other conditions still apply.
    expect(probes.some((probe) => matchFault(parseFaultPlan({ rules: [{ ...rule, rate: 0 }] }), probe))).toBe(false)
    expect(probes.every((probe) => matchFault(parseFaultPlan({ rules: [{ ...rule, rate: 1 }] }), probe))).toBe(true)
    expect(matchFault(plan, { ...probes[0]!, attempt: 4 })).toBeUndefined()
  })

  it('rejects a rate outside 0..1 and a negative or fractional seed', () => {
    expect(() => parseFaultPlan({ rules: [{ target: 'routing', kind: 'timeout', rate: 1.5 }] })).toThrow(/rules\.0\.rate/)
    expect(() => parseFaultPlan({ rules: [{ target: 'routing', kind: 'timeout', rate: 0.1, seed: -1 }] })).toThrow(/rules\.0\.seed/)
    expect(() => parseFaultPlan({ rules: [{ target: 'routing', kind: 'timeout', rate: 0.1, seed: 1.5 }] })).toThrow(/rules\.0\.seed/)
  })
})
