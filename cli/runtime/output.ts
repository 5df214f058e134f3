import Table from 'cli-table3'
import { stringify } from 'csv-stringify/sync'
import { terminalSafe } from './terminalText'

/** How a query command prints its rows. */
export const OutputFormat = { table: 'table', json: 'json', csv: 'csv' } as const
export type OutputFormat = (typeof OutputFormat)[keyof typeof OutputFormat]
export const OUTPUT_FORMATS = Object.values(OutputFormat)

/** One printed column: the row field it shows and its header. */
export interface OutputColumn<Row> {
  readonly key: keyof Row & string
  readonly header: string
}

/** Renders a value for a table or CSV cell: dates as ISO 8601, bigints as digits, objects as JSON, null as empty. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return ''
  if (value instanceof Date) return value.toISOString()
  if (typeof value === 'bigint' || typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (typeof value === 'string') return value
  return JSON.stringify(value, jsonReplacer)
}

/** JSON.stringify replacer that writes bigints as strings (positions and revisions are bigints). */
export function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value
}

/**
 * Formats query rows as a table, a JSON array (every field, not just the columns) or CSV with a header line
 * (RFC 4180 quoting by csv-stringify). A table of no rows prints `emptyMessage`. Table cells are terminalSafe; JSON
 * and CSV are data and keep every character.
 */
export function formatRows<Row extends object>(rows: readonly Row[], columns: readonly OutputColumn<Row>[], format: OutputFormat, emptyMessage = 'no rows'): string {
  switch (format) {
    case 'json':
      return JSON.stringify(rows, jsonReplacer, 2)
    case 'csv':
      return stringify(
        rows.map((row) => columns.map((column) => cellText(row[column.key]))),
        { header: true, columns: columns.map((column) => column.header) },
      ).trimEnd()
    case 'table': {
      if (rows.length === 0) return emptyMessage
      const table = new Table({ head: columns.map((column) => column.header), style: { head: [], border: [] } })
      // Cells hold model- and tenant-provided text: no escape sequence of theirs reaches the terminal.
      for (const row of rows) table.push(columns.map((column) => terminalSafe(cellText(row[column.key]))))
      return table.toString()
    }
  }
}
