import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { EVENT_TYPES } from '../../historian/events'
import { InvalidIdentifierError } from '../../historian/streams'
import { auditTrail, validateAuditTrailQuery, type AuditTrailQuery } from '../../projections/auditTimeline/query'
import { exportTenant, validateExportQuery } from '../../projections/export/tenantExport'
import { InvalidQueryError } from '../../projections/queryFilters'
import { taskSummaries, tenantSummary, validateTaskSummaryQuery } from '../../projections/taskSummary/query'
import { randomKeyRing } from '../support/databases'
import type { EventStore } from '../../historian/port'

/** A real pool to a port nothing listens on: any query fails with a connection error, so a filter error proves nothing was read. */
const unreachable = new pg.Pool({ connectionString: 'postgres://nobody:nothing@127.0.0.1:9/none', connectionTimeoutMillis: 2_000 })
afterAll(() => unreachable.end())

function filterError(run: () => unknown): InvalidQueryError {
  try {
    run()
  } catch (error) {
    if (error instanceof InvalidQueryError) return error
    throw error
  }
  throw new Error('expected an InvalidQueryError')
}

describe('audit trail query validation', () => {
  const valid = (query: Partial<AuditTrailQuery>) => validateAuditTrailQuery({ tenantId: 'acme', ...query })

  it('normalizes a valid query', () => {
    expect(valid({})).toEqual({
      tenantId: 'acme',
      taskId: null,
      from: null,
      to: null,
      eventTypes: null,
      modelVersion: null,
      promptTemplateVersion: null,
      afterPosition: 0n,
      afterSequence: null,
      limit: 1_000,
    })
    expect(valid({ from: '2026-01-02', to: '2026-01-03T00:00:00+01:00', eventTypes: ['PlanCreated', 'PlanCreated'], afterPosition: 7n, limit: 10_000 })).toMatchObject({
      from: new Date('2026-01-02T00:00:00Z'),
      to: new Date('2026-01-02T23:00:00Z'),
      eventTypes: ['PlanCreated'],
      afterPosition: 7n,
      limit: 10_000,
    })
  })

  it('names the filter that is wrong', () => {
    const cases: [Partial<AuditTrailQuery>, string, RegExp][] = [
      [{ from: 'yesterday' }, 'from', /not an ISO 8601/],
      [{ to: '2026-13-45' }, 'to', /not a valid date/],
      [{ from: '1970-01-01' }, 'from', /outside 2000-01-01 to 2100-01-01/],
      [{ from: '2026-02-01', to: '2026-01-01' }, 'time range', /is not before/],
      [{ from: '2026-01-01', to: '2026-01-01' }, 'time range', /is not before/],
      [{ from: '2001-01-01', to: '2099-01-01' }, 'time range', /wider than/],
      [{ eventTypes: ['MysteryHappened'] }, 'event type', new RegExp(`known: ${EVENT_TYPES.join(', ')}`)],
      [{ eventTypes: [] }, 'event type', /at least one/],
      [{ modelVersion: "x' or 1=1 --" }, 'model version', /must be 1 to 128 characters/],
      [{ promptTemplateVersion: '' }, 'prompt template version', /must be 1 to 128/],
      [{ afterPosition: -1n }, 'after position', /from 0 to/],
      [{ afterPosition: 2n ** 63n }, 'after position', /from 0 to 9223372036854775807/],
      [{ afterPosition: 5 as unknown as bigint }, 'after position', /from 0 to/],
      [{ afterSequence: -1n }, 'after sequence', /from 0 to/],
      [{ afterSequence: 2n ** 63n }, 'after sequence', /from 0 to 9223372036854775807/],
      [{ afterSequence: 3n, afterPosition: 3n }, 'after sequence', /not both/],
      [{ limit: 0 }, 'limit', /from 1 to 10000/],
      [{ limit: 10_001 }, 'limit', /from 1 to 10000/],
      [{ limit: 2.5 }, 'limit', /from 1 to 10000/],
    ]
    for (const [query, filter, reason] of cases) {
      const error = filterError(() => valid(query))
      expect(error.filter, JSON.stringify(query, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))).toBe(filter)
      expect(error.reason).toMatch(reason)
    }
    expect(() => valid({ tenantId: 'Acme' })).toThrow(InvalidIdentifierError)
    expect(() => valid({ taskId: '../etc' })).toThrow(InvalidIdentifierError)
  })

  it('rejects bad input before touching the database', async () => {
    await expect(auditTrail(unreachable, { tenantId: 'acme', eventTypes: ['Nope'] })).rejects.toBeInstanceOf(InvalidQueryError)
    await expect(auditTrail(unreachable, { tenantId: 'ACME' })).rejects.toBeInstanceOf(InvalidIdentifierError)
    await expect(taskSummaries(unreachable, { tenantId: 'acme', status: 'done' as never })).rejects.toBeInstanceOf(InvalidQueryError)
    await expect(tenantSummary(unreachable, 'acme', { status: 'done' as never })).rejects.toBeInstanceOf(InvalidQueryError)
    // A valid query does reach the pool, and fails there: the checks above really stopped first.
    await expect(auditTrail(unreachable, { tenantId: 'acme' })).rejects.not.toBeInstanceOf(InvalidQueryError)
  })
})

describe('task summary and export query validation', () => {
  it('checks status and limit of task summary queries', () => {
    expect(validateTaskSummaryQuery({ tenantId: 'acme', status: 'failed', limit: 5 })).toEqual({ tenantId: 'acme', taskId: null, status: 'failed', limit: 5 })
    const status = filterError(() => validateTaskSummaryQuery({ tenantId: 'acme', status: 'FAILED' as never }))
    expect([status.filter, status.reason]).toEqual(['status', '"FAILED" is not a task status; use one of received, running, completed, failed, cancelled'])
    expect(filterError(() => validateTaskSummaryQuery({ tenantId: 'acme', limit: 10_001 })).filter).toBe('limit')
    expect(filterError(() => validateTaskSummaryQuery({ tenantId: 'acme', status: 'toString' as never })).filter).toBe('status')
  })

  it('checks the export window before reading the store', async () => {
    expect(validateExportQuery({ tenantId: 'acme' })).toEqual({ tenantId: 'acme', from: null, to: null })
    expect(filterError(() => validateExportQuery({ tenantId: 'acme', from: '2026-01-02', to: '2026-01-01' })).filter).toBe('time range')
    const untouchable = new Proxy({} as EventStore, {
      get: () => {
        throw new Error('the store was used')
      },
    })
    await expect(exportTenant({ store: untouchable, keyRing: randomKeyRing() }, { tenantId: 'acme', to: 'soon' }, 'jsonl').next()).rejects.toBeInstanceOf(InvalidQueryError)
    await expect(exportTenant({ store: untouchable, keyRing: randomKeyRing() }, { tenantId: 'Acme' }, 'jsonl').next()).rejects.toBeInstanceOf(InvalidIdentifierError)
  })
})
