import { describe, expect, it } from 'vitest'
import { StreamLifecycleDecided, type LifecycleDecision } from '../../historian/events'
import { decisionHides, deriveLifecycle, lifecycleDecisionId, lifecycleDrift } from '../../historian/lifecycle/lifecycleState'
import { complianceStreamName, complianceStreamTenant, parseTaskStreamName } from '../../historian/streams'

const STREAM = 'tenant_acme-task-a'
const decided = (decision: LifecycleDecision, streamRevision: number | null = 9, decidedAt = '2026-12-04T12:00:00.000Z'): StreamLifecycleDecided['data'] => ({
  decisionId: '00000000-0000-5000-8000-000000000000',
  targetStream: STREAM,
  decision,
  decidedBy: 'dpo',
  reason: 'policy',
  decidedAt,
  streamRevision,
})

describe('lifecycle decisions derive the store state', () => {
  it('folds decisions as the store applies them: a soft delete hides through its revision, retention keeps the truncate-before, a tombstone is final', () => {
    expect(deriveLifecycle([])).toEqual({ tombstoned: false, metadata: {} })
    expect(deriveLifecycle([decided({ kind: 'soft_delete' }, 4)])).toEqual({ tombstoned: false, metadata: { truncateBefore: 5n }, deletedThrough: 4n })
    expect(deriveLifecycle([decided({ kind: 'soft_delete' }, 4), decided({ kind: 'retain', maxCount: 3 })])).toEqual({ tombstoned: false, metadata: { maxCount: 3, truncateBefore: 5n } })
    expect(deriveLifecycle([decided({ kind: 'retain', maxAgeSeconds: 60 }), decided({ kind: 'truncate', before: 7 })])).toEqual({ tombstoned: false, metadata: { maxAge: 60, truncateBefore: 7n } })
    expect(deriveLifecycle([decided({ kind: 'tombstone' }), decided({ kind: 'retain', maxCount: 1 })])).toEqual({ tombstoned: true, metadata: {} })
  })

  it('names every way the store can differ from the decisions, and accepts a soft-deleted stream written again', () => {
    const derived = deriveLifecycle([decided({ kind: 'soft_delete' }, 4)])
    const stored = (metadata: object, deleted = false) => ({ tombstoned: false as const, metadata, metadataRevision: 0n, deleted })
    expect(lifecycleDrift(derived, stored({}, true), undefined)).toBeUndefined()
    expect(lifecycleDrift(derived, stored({ truncateBefore: 5n }), 6n)).toBeUndefined()
    expect(lifecycleDrift(derived, { tombstoned: false, metadata: {}, metadataRevision: 'no_metadata', deleted: false }, 4n)).toBe('the decisions soft-delete it through revision 4, the store does not')
    expect(lifecycleDrift(deriveLifecycle([]), stored({ maxCount: 1 }), 9n)).toBe('the store has maxCount 1, the decisions no rules')
    expect(lifecycleDrift(deriveLifecycle([]), { tombstoned: true }, undefined)).toMatch(/no recorded decision tombstones it/)
    expect(lifecycleDrift(deriveLifecycle([]), stored({}, true), undefined)).toMatch(/no recorded decision deletes it/)
  })

  it('tells which events a decision hides, judging maxAge at the decision time or at a given one', () => {
    const event = (revision: number, recordedAt = '2026-12-04T11:00:00.000Z') => ({ revision: BigInt(revision), recordedAt: new Date(recordedAt) })
    expect(decisionHides(decided({ kind: 'soft_delete' }, 4), event(4))).toBe(true)
    expect(decisionHides(decided({ kind: 'soft_delete' }, 4), event(5))).toBe(false)
    expect(decisionHides(decided({ kind: 'truncate', before: 3 }), event(2))).toBe(true)
    expect(decisionHides(decided({ kind: 'retain', maxCount: 2 }, 9), event(7))).toBe(true)
    expect(decisionHides(decided({ kind: 'retain', maxCount: 2 }, 9), event(8))).toBe(false)
    expect(decisionHides(decided({ kind: 'retain', maxAgeSeconds: 7_200 }), event(0))).toBe(false)
    expect(decisionHides(decided({ kind: 'retain', maxAgeSeconds: 7_200 }), event(0), new Date('2026-12-04T13:00:00.000Z'))).toBe(true)
  })

  it('gives a decision a stable ID that changes with what was decided and what it follows', () => {
    const base = { tenantId: 'acme', targetStream: STREAM, decision: { kind: 'retain', maxCount: 2, maxAgeSeconds: 5 } as LifecycleDecision, streamRevision: 9, follows: null }
    const id = lifecycleDecisionId(base)
    expect(lifecycleDecisionId({ ...base, decision: { kind: 'retain', maxAgeSeconds: 5, maxCount: 2 } })).toBe(id)
    expect(lifecycleDecisionId({ ...base, follows: id })).not.toBe(id)
    expect(lifecycleDecisionId({ ...base, streamRevision: 10 })).not.toBe(id)
  })

  it('keeps reason short and refuses an empty retention', () => {
    expect(StreamLifecycleDecided.shape.data.safeParse(decided({ kind: 'retain' } as LifecycleDecision)).success).toBe(false)
    expect(StreamLifecycleDecided.shape.data.safeParse({ ...decided({ kind: 'tombstone' }), reason: 'x'.repeat(501) }).success).toBe(false)
  })

  it("names a tenant's compliance stream so that it never reads as a task stream", () => {
    expect(complianceStreamName('acme')).toBe('compliance_acme-lifecycle')
    expect(complianceStreamTenant('compliance_acme-lifecycle')).toBe('acme')
    expect(complianceStreamTenant('tenant_acme-lifecycle')).toBeUndefined()
    expect(() => parseTaskStreamName(complianceStreamName('acme'))).toThrow(/not a task stream name/)
    expect(() => complianceStreamName('a-b')).toThrow(/invalid tenant ID/)
  })
})
