import { stringify } from 'csv-stringify/sync'
import type { ExportHeader, ExportManifest, ExportRecord } from './exportFormat'

/** The file formats an export is rendered in. */
export const ExportFormat = { jsonl: 'jsonl', csv: 'csv' } as const
export type ExportFormat = (typeof ExportFormat)[keyof typeof ExportFormat]

/** The header of a CSV export's records, after its `#` header line. */
export const CSV_EXPORT_COLUMNS = ['sequence', 'stream', 'revision', 'event_id', 'type', 'schema_version', 'recorded_at', 'data', 'metadata'] as const

/** Renders each part of an export as whole lines, each ending with a newline, so an export is written as it is read. */
export interface ExportRenderer {
  header(header: ExportHeader): string
  record(record: ExportRecord): string
  manifest(manifest: ExportManifest): string
}

const jsonLine = (value: unknown) => `${JSON.stringify(value)}\n`

/**
 * `jsonl`: the header on the first line, one record per line, the manifest on the last, each line one JSON object;
 * `verifyExport` reads it. `csv`: `#` + the header's JSON, the column names, one RFC 4180 row per event with `data` and
 * `metadata` as JSON text (exactly the JSONL values), and `#` + the manifest's JSON last.
 */
export function exportRenderer(format: ExportFormat): ExportRenderer {
  switch (format) {
    case 'jsonl':
      return { header: jsonLine, record: jsonLine, manifest: jsonLine }
    case 'csv':
      return {
        header: (header) => `#${jsonLine(header)}${stringify([[...CSV_EXPORT_COLUMNS]])}`,
        record: (record) =>
          stringify([
            [
              record.sequence,
              record.stream,
              record.revision,
              record.eventId,
              record.type,
              record.schemaVersion === null ? '' : String(record.schemaVersion),
              record.recordedAt,
              JSON.stringify(record.data),
              JSON.stringify(record.metadata),
            ],
          ]),
        manifest: (manifest) => `#${jsonLine(manifest)}`,
      }
  }
}
