import { describe, expect, it } from 'vitest'
import { sweepTime } from '../../cli/commands/lifecycle'
import { parseStateTarget } from '../../cli/commands/state'
import { InvalidQueryError, parseInstant, parseIsoInstant } from '../../projections/queryFilters'

const refusal = (run: () => unknown): InvalidQueryError => {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidQueryError)
    return error as InvalidQueryError
  }
  throw new Error('not refused')
}

describe('parseIsoInstant, the one parser of user-given dates and times', () => {
  it('reads an ISO 8601 date as midnight UTC and a date-time with its zone', () => {
    expect(parseIsoInstant('from', '2026-02-28')).toEqual(new Date('2026-02-28T00:00:00Z'))
    expect(parseIsoInstant('from', '2028-02-29')).toEqual(new Date('2028-02-29T00:00:00Z'))
    expect(parseIsoInstant('from', '2026-02-03T15:22:10.5+01:00')).toEqual(new Date('2026-02-03T14:22:10.500Z'))
    expect(parseIsoInstant('from', '2026-12-31T23:59:59Z')).toEqual(new Date('2026-12-31T23:59:59Z'))
    expect(parseIsoInstant('from', '2026-02-03T14:22Z')).toEqual(new Date('2026-02-03T14:22:00Z'))
  })

  it('refuses impossible dates and times instead of rolling them over, naming the parameter in one line', () => {
    for (const bad of ['2026-02-31', '2026-02-29', '2026-04-31T10:00:00Z', '2026-13-01', '2026-00-10', '2026-01-00', '2026-01-01T24:00:00Z', '2026-01-01T10:60:00Z', '2026-01-01T10:00:60Z', '2026-01-01T10:00:00+24:00']) {
      const error = refusal(() => parseIsoInstant('from', bad))
      expect(error.filter).toBe('from')
      expect(error.message).toBe(`invalid from: ${JSON.stringify(bad)} is not a valid date or time (no such day, hour, minute or offset)`)
    }
  })

  it('refuses what is not ISO 8601 with a zone, and a bare date where a time is required', () => {
    for (const bad of ['yesterday', '2026-2-3', '2026-02-03T14:22:10', '2026-02-03 14:22:10Z', '', ' 2026-02-03']) {
      expect(refusal(() => parseIsoInstant('to', bad)).message).toMatch(/^invalid to: .* is not an ISO 8601 date or time with a zone/)
    }
    expect(refusal(() => parseIsoInstant('--at', '2026-02-03', { requireTime: true })).message).toMatch(/^invalid --at: "2026-02-03" is not an ISO 8601 time with a zone/)
  })

  it('is what query filters, `state --at` and `lifecycle sweep --at` all parse with', () => {
    expect(refusal(() => parseInstant('from', '2026-02-31')).message).toMatch(/^invalid from: "2026-02-31" is not a valid date/)
    expect(() => parseStateTarget('2026-02-31T10:00:00Z')).toThrow(/^--at must be a revision .*"2026-02-31T10:00:00Z" is not a valid date or time/)
    expect(refusal(() => sweepTime('2026-02-31T10:00:00Z')).message).toMatch(/^invalid --at: "2026-02-31T10:00:00Z" is not a valid date or time/)
    expect(sweepTime('2026-02-28T10:00:00Z')).toEqual(new Date('2026-02-28T10:00:00Z'))
  })
})
