import { describe, expect, it } from 'vitest'
import { redriveRequester } from '../../cli/commands/redrive'
import { InvalidQueryError } from '../../projections/queryFilters'

describe('redriveRequester', () => {
  it('is --by when given, else the OS user name', () => {
    expect(redriveRequester('  alice ', () => 'root')).toBe('alice')
    expect(redriveRequester(undefined, () => 'sre-on-call')).toBe('sre-on-call')
  })

  it('refuses an empty or unprintable name, naming --by', () => {
    expect(() => redriveRequester('   ', () => 'root')).toThrow(new InvalidQueryError('--by', 'must be 1 to 200 printable characters'))
    expect(() => redriveRequester('ali\nce', () => 'root')).toThrow(InvalidQueryError)
    expect(() => redriveRequester('x'.repeat(201), () => 'root')).toThrow(InvalidQueryError)
    expect(() => redriveRequester(undefined, () => '')).toThrow(new InvalidQueryError('--by', 'the OS user name is unknown here; say who redrives with --by NAME'))
  })
})
