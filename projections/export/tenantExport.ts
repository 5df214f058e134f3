import { MAX_REPORTED_BREAKS, verifyChain, type ChainVerification } from '../../historian/integrity/verifyChain'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import type { EventStore, RecordedEvent } from '../../historian/port'
import { assertTenantId, parseTaskStreamName } from '../../historian/streams'
import { parseInstant, timeWindow } from '../queryFilters'
import {
  EXPORT_FORMAT,
  EXPORT_FORMAT_VERSION,
  ExportChainStatus,
  manifestHmac,
  recordsDigest,
  type ExportManifest,
  type ExportRecord,
  type ExportStream,
  type TenantExport,
} from './exportFormat'

export * from './exportFormat'
export { CSV_EXPORT_COLUMNS, ExportFormat, renderExport } from './renderExport'
export { verifyExport, ExportFormatError, ExportProblemKind, type ExportProblem, type ExportVerification } from './verifyExport'

/** Live counts while a tenant's log is read for an export. */
export interface ExportProgress {
  readonly eventsRead: number
  readonly recordsExported: number
}

/** What exportTenant reads from and signs with. */
export interface ExportDeps {
  /** Only `readTenantLog` (the tenant's own category) and, through verifyChain, that tenant's streams are read. */
  readonly store: EventStore
  readonly keyRing: TenantKeyRing
  readonly onProgress?: (progress: ExportProgress) => void
  readonly clock?: () => Date
  /** Events read per page. Default 1,000. */
  readonly pageSize?: number
}

/** Which tenant to export, and optionally a closed-open window on the time each event was recorded. */
export interface ExportQuery {
  readonly tenantId: string
  readonly from?: string | Date
  readonly to?: string | Date
}

/** An ExportQuery after validation. */
export interface ValidExportQuery {
  readonly tenantId: string
  readonly from: Date | null
  readonly to: Date | null
}

/** Validates an export request without reading anything: the tenant ID, then the window (InvalidQueryError naming from/to). */
export function validateExportQuery(query: ExportQuery): ValidExportQuery {
  const tenantId = assertTenantId(query.tenantId)
  let from = query.from === undefined ? null : parseInstant('from', query.from)
  let to = query.to === undefined ? null : parseInstant('to', query.to)
  if (from && to) ({ from, to } = timeWindow({ from, to }, to, 0))
  return { tenantId, from, to }
}

function toRecord(event: RecordedEvent): ExportRecord {
  const schemaVersion = event.metadata.schemaVersion
  return {
    position: event.position.toString(),
    stream: event.streamName,
    revision: event.revision.toString(),
    eventId: event.eventId,
    type: event.type,
    schemaVersion: typeof schemaVersion === 'number' && Number.isSafeInteger(schemaVersion) ? schemaVersion : null,
    recordedAt: event.recordedAt.toISOString(),
    data: event.data,
    metadata: event.metadata,
  }
}

/** One stream's records while the log is read: those in the export, and later ones held back until the window shows another. */
interface StreamRecords {
  readonly taskId: string
  readonly exported: ExportRecord[]
  held: ExportRecord[]
}

/**
 * Reads the tenant's log page by page and keeps the events recorded inside the window. Per stream the export is
 * contiguous: an event outside the window that lies between two exported events of its stream is exported too, so
 * the records of a stream always run from its first to its last exported revision without a gap.
 */
async function readWindow(deps: ExportDeps, query: ValidExportQuery): Promise<{ records: ExportRecord[]; streams: Map<string, StreamRecords> }> {
  const pageSize = deps.pageSize ?? 1_000
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new RangeError(`exportTenant: pageSize must be a whole number >= 1, got ${pageSize}`)
  const inWindow = (at: Date) => (query.from === null || at >= query.from) && (query.to === null || at < query.to)
  const streams = new Map<string, StreamRecords>()
  let eventsRead = 0
  let recordsExported = 0
  let after: bigint | undefined
  for (;;) {
    const page = await deps.store.readTenantLog(query.tenantId, { after, maxCount: pageSize })
    if (page.length === 0) break
    for (const event of page) {
      eventsRead++
      let stream = streams.get(event.streamName)
      if (!stream) {
        const parsed = parseTaskStreamName(event.streamName)
        if (parsed.tenantId !== query.tenantId) throw new Error(`readTenantLog(${query.tenantId}) returned an event of ${event.streamName}, another tenant's stream`)
        stream = { taskId: parsed.taskId, exported: [], held: [] }
        streams.set(event.streamName, stream)
      }
      if (inWindow(event.recordedAt)) {
        recordsExported += stream.held.length + 1
        stream.exported.push(...stream.held, toRecord(event))
        stream.held = []
      } else if (stream.exported.length > 0) {
        stream.held.push(toRecord(event))
      }
    }
    deps.onProgress?.({ eventsRead, recordsExported })
    after = page[page.length - 1]!.position
  }
  for (const [name, stream] of streams) if (stream.exported.length === 0) streams.delete(name)
  const records = [...streams.values()].flatMap((stream) => stream.exported)
  records.sort((a, b) => (BigInt(a.position) < BigInt(b.position) ? -1 : 1))
  return { records, streams }
}

/** Each exported stream's entry in the manifest, with the whole stream's chain status from the tenant-wide verification. */
async function streamEntries(deps: ExportDeps, tenantId: string, streams: Map<string, StreamRecords>, chain: ChainVerification): Promise<ExportStream[]> {
  const breaks = new Map(chain.breaks.map((broken) => [broken.streamName, broken]))
  const partials = new Map(chain.partialStreams.map((partial) => [partial.streamName, partial]))
  // Beyond MAX_REPORTED_BREAKS the tenant-wide result only counts; then an unlisted stream is verified on its own.
  const listsComplete = chain.breaks.length === chain.brokenStreams && chain.partialStreams.length < MAX_REPORTED_BREAKS
  const entries: ExportStream[] = []
  for (const [stream, { taskId, exported }] of streams) {
    let broken = breaks.get(stream)
    let partial = partials.get(stream)
    if (!listsComplete && !broken && !partial) {
      const alone = await verifyChain({ store: deps.store, keyRing: deps.keyRing, tenantId, taskId, clock: deps.clock })
      broken = alone.breaks[0]
      partial = alone.partialStreams[0]
    }
    entries.push({
      stream,
      taskId,
      firstRevision: exported[0]!.revision,
      lastRevision: exported[exported.length - 1]!.revision,
      records: exported.length,
      chain: broken ? ExportChainStatus.broken : partial ? ExportChainStatus.partial : ExportChainStatus.intact,
      verifiedFromRevision: partial?.firstRevision ?? '0',
      chainBreak: broken ?? null,
    })
  }
  return entries
}

/**
 * Exports one tenant's events from the event store (the source of truth, so the export is complete): every event
 * recorded in the window [from, to) (no bounds: the whole log), as stored, in global order, with a manifest holding
 * the counts, each stream's exported revisions, the hash-chain verification of every whole task stream of the tenant
 * (verifyChain, run after the records were read), a SHA-256 of the records and an HMAC of the manifest with the
 * tenant key. Only the tenant's own streams are read. Validation comes first; nothing is read for a bad request.
 */
export async function exportTenant(deps: ExportDeps, query: ExportQuery): Promise<TenantExport> {
  const valid = validateExportQuery(query)
  const clock = deps.clock ?? (() => new Date())
  const exportedAt = clock().toISOString()
  const tenantKey = deps.keyRing.keyFor(valid.tenantId)
  const { records, streams } = await readWindow(deps, valid)
  const chainVerification = await verifyChain({ store: deps.store, keyRing: deps.keyRing, tenantId: valid.tenantId, pageSize: deps.pageSize, clock })
  const byType = new Map<string, number>()
  for (const record of records) byType.set(record.type, (byType.get(record.type) ?? 0) + 1)
  const unsigned: Omit<ExportManifest, 'manifestHmac'> = {
    format: EXPORT_FORMAT,
    formatVersion: EXPORT_FORMAT_VERSION,
    tenantId: valid.tenantId,
    window: { from: valid.from?.toISOString() ?? null, to: valid.to?.toISOString() ?? null, on: 'recordedAt' },
    exportedAt,
    counts: { records: records.length, streams: streams.size, byType: Object.fromEntries([...byType].sort(([a], [b]) => (a < b ? -1 : 1))) },
    streams: await streamEntries(deps, valid.tenantId, streams, chainVerification),
    chainVerification,
    recordsSha256: recordsDigest(records),
  }
  // The HMAC is computed over the manifest's JSON form, exactly as a verifier will parse it back.
  const manifest: ExportManifest = { ...unsigned, manifestHmac: manifestHmac(tenantKey, JSON.parse(JSON.stringify(unsigned)) as Record<string, unknown>) }
  return { manifest, records }
}
