import { describe, expect, it } from 'vitest'
import { formatRows } from '../../cli/runtime/output'
import { terminalSafe } from '../../cli/runtime/terminalText'

const HOSTILE = 'lookup\u001b[2J\u001b]0;pwned\u0007\r\u009b31m\u202Eevil'

describe('text printed to a terminal', () => {
  it('shows escape sequences, carriage returns, C1 controls and bidi overrides as escapes, keeping tabs, newlines and other text', () => {
    expect(terminalSafe(HOSTILE)).toBe('lookup\\x1B[2J\\x1B]0;pwned\\x07\\x0D\\x9B31m\\u202Eevil')
    expect(terminalSafe('plain text, ünïcödé and 数字\twith\nlines')).toBe('plain text, ünïcödé and 数字\twith\nlines')
  })

  it('neutralises a model-produced tool name in a table, and keeps it exact in JSON and CSV, which are data', () => {
    const rows = [{ toolName: HOSTILE, calls: 1 }]
    const columns = [
      { key: 'toolName', header: 'tool' },
      { key: 'calls', header: 'calls' },
    ] as const
    const table = formatRows(rows, columns, 'table')
    // eslint-disable-next-line no-control-regex -- the control characters must be gone
    expect(table).not.toMatch(/[\u001b\u0007\r\u009b\u202e]/)
    expect(table).toContain('lookup\\x1B[2J')
    expect(JSON.parse(formatRows(rows, columns, 'json'))).toEqual(rows)
    expect(formatRows(rows, columns, 'csv')).toContain('\u001b[2J')
  })
})
