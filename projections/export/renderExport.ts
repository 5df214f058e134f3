import { stringify } from 'csv-stringify/sync'
import type { TenantExport } from './exportFormat'

/** The file formats an export is rendered in. */
export const ExportFormat = { jsonl: 'jsonl', csv: 'csv' } as const
export type ExportFormat = (typeof ExportFormat)[keyof typeof ExportFormat]

/** The header of a CSV export's records, after its `#` manifest line. */
export const CSV_EXPORT_COLUMNS = ['position', 'stream', 'revision', 'event_id', 'type', 'schema_version', 'recorded_at', 'data', 'metadata'] as const

/**
 * Renders an export as text. `jsonl`: the manifest on the first line, then one record per line, each line one JSON
 * object, the file ending with a newline; `verifyExport` reads it. `csv`: a first line `#` + the manifest's JSON,
 * then a header and one RFC 4180 row per event, with `data` and `metadata` as JSON text (exactly the JSONL values).
 */
export function renderExport(exported: TenantExport, format: ExportFormat): string {
  switch (format) {
    case 'jsonl':
      return [exported.manifest, ...exported.records].map((line) => JSON.stringify(line)).join('\n') + '\n'
    case 'csv': {
      const rows = exported.records.map((record) => [
        record.position,
        record.stream,
        record.revision,
        record.eventId,
        record.type,
        record.schemaVersion === null ? '' : String(record.schemaVersion),
        record.recordedAt,
        JSON.stringify(record.data),
        JSON.stringify(record.metadata),
      ])
      return `#${JSON.stringify(exported.manifest)}\n${stringify(rows, { header: true, columns: [...CSV_EXPORT_COLUMNS] })}`
    }
  }
}
