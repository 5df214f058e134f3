import { setImmediate } from 'node:timers/promises'
import { MAX_REPORTED_BREAKS, TenantChainWalk, verifyChain, type ChainVerification } from '../../historian/integrity/verifyChain'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import type { EventStore, RecordedEvent } from '../../historian/port'
import { assertTenantId, parseTaskStreamName } from '../../historian/streams'
import { parseInstant, timeWindow } from '../queryFilters'
import {
  EXPORT_FORMAT,
  EXPORT_FORMAT_VERSION,
  ExportChainStatus,
  exportChainBreak,
  exportChainVerification,
  exportHmac,
  RecordsDigest,
  type ExportHeader,
  type ExportManifest,
  type ExportRecord,
  type ExportStream,
} from './exportFormat'
import type { ExportPacer } from './exportPacer'
import { exportRenderer, type ExportFormat, type ExportRenderer } from './renderExport'

export * from './exportFormat'
export { CSV_EXPORT_COLUMNS, ExportFormat, exportRenderer, type ExportRenderer } from './renderExport'
export { ExportPacer } from './exportPacer'
export {
  verifyExport,
  verifyExportLines,
  ExportFormatError,
  ExportProblemKind,
  type ExportProblem,
  type ExportVerification,
} from './verifyExport'

/** Events per page read by default: short queries, so that other requests are not kept waiting long (docs/audit.md). */
const DEFAULT_PAGE_SIZE = 20

/** Live counts while a tenant's log is read for an export. */
export interface ExportProgress {
  readonly eventsRead: number
  readonly recordsExported: number
}

/** What exportTenant reads from and signs with. */
export interface ExportDeps {
  /** Only `readTenantHead` and `readTenantLog` (the tenant's own category) and, to verify chains, that tenant's streams are read. */
  readonly store: EventStore
  readonly keyRing: TenantKeyRing
  readonly onProgress?: (progress: ExportProgress) => void
  readonly clock?: () => Date
  /** Called once with the manifest, just before its line is yielded. */
  readonly onManifest?: (manifest: ExportManifest) => void
  /** Shared by the exports of a server, to keep them behind its other requests (ExportPacer); unset: full speed. */
  readonly pacer?: ExportPacer
  /** Events read per page (one short query each). Default DEFAULT_PAGE_SIZE. */
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

/**
 * Numbers a tenant's events as its log is read from the start, in log order: the store's `tenantSequence` where it
 * assigns one at append, else (EventStoreDB, null) the count of the tenant's events read so far, which is the same
 * order. An export always reads from the start of the log, so the count is right.
 */
export function tenantSequencer(): (event: RecordedEvent) => bigint {
  let counted = 0n
  return (event) => {
    counted++
    return event.tenantSequence ?? counted
  }
}

function toRecord(event: RecordedEvent, sequence: bigint): ExportRecord {
  const schemaVersion = event.metadata.schemaVersion
  return {
    sequence: sequence.toString(),
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

/** One stream of the tenant while its log is read: the revisions exported so far, and later ones held back. */
interface StreamRecords {
  readonly taskId: string
  firstRevision: string | null
  lastRevision: string | null
  records: number
  held: ExportRecord[]
}

/** What was exported, once every record was written: the material of the manifest. */
interface ExportedRecords {
  readonly streams: Map<string, StreamRecords>
  readonly chainVerification: ChainVerification
  readonly records: number
  readonly byType: Map<string, number>
  readonly recordsSha256: string
}

/**
 * Reads the tenant's log page by page up to `through` (a short keyset query per page, so between pages the event loop
 * and the database serve other requests) and yields, per page, the records of the events recorded inside the window.
 * Memory stays O(streams + one page): records are yielded as they are read. Per stream the export is contiguous: an
 * event outside the window that lies between two exported events of its stream is exported too, so the records of a
 * stream always run from its first to its last exported revision without a gap. That needs the only buffering here:
 * a stream's events after its last exported one are held until another of its events falls inside the window (then
 * they are written, just before it) or the read ends (then dropped). What is held is bounded by the events of the
 * exported streams recorded outside the window after their last exported event: nothing for a whole-log export, and
 * for a window, the exported streams' events recorded after it up to the snapshot.
 */
async function* readRecords(
  deps: ExportDeps,
  query: ValidExportQuery,
  through: bigint | null,
  pageSize: number,
  render: ExportRenderer,
): AsyncGenerator<string, ExportedRecords> {
  // The chains of every stream are verified from the same reads, so the log is read once.
  const chains = new TenantChainWalk({ store: deps.store, keyRing: deps.keyRing, tenantId: query.tenantId, pageSize, clock: deps.clock })
  const inWindow = (at: Date) => (query.from === null || at >= query.from) && (query.to === null || at < query.to)
  const sequenceOf = tenantSequencer()
  const streams = new Map<string, StreamRecords>()
  const byType = new Map<string, number>()
  const digest = new RecordsDigest()
  let eventsRead = 0
  let recordsExported = 0

  /** Reads and renders the page after `after`; `ended` once the log or the snapshot ends. */
  const nextPage = async (after: bigint | undefined): Promise<{ text: string; last: bigint | undefined; ended: boolean }> => {
    const page = await deps.store.readTenantLog(query.tenantId, { after, maxCount: pageSize })
    let text = ''
    let ended = page.length === 0
    for (const event of page) {
      if (event.position > through!) {
        ended = true
        break
      }
      eventsRead++
      await chains.check(event)
      const sequence = sequenceOf(event)
      let stream = streams.get(event.streamName)
      if (!stream) {
        const parsed = parseTaskStreamName(event.streamName)
        if (parsed.tenantId !== query.tenantId) throw new Error(`readTenantLog(${query.tenantId}) returned an event of ${event.streamName}, another tenant's stream`)
        stream = { taskId: parsed.taskId, firstRevision: null, lastRevision: null, records: 0, held: [] }
        streams.set(event.streamName, stream)
      }
      if (!inWindow(event.recordedAt)) {
        if (stream.records > 0) stream.held.push(toRecord(event, sequence))
        continue
      }
      const record = toRecord(event, sequence)
      for (const written of [...stream.held, record]) {
        digest.add(written)
        byType.set(written.type, (byType.get(written.type) ?? 0) + 1)
        text += render.record(written)
      }
      stream.firstRevision ??= record.revision
      stream.lastRevision = record.revision
      stream.records += stream.held.length + 1
      recordsExported += stream.held.length + 1
      stream.held = []
    }
    deps.onProgress?.({ eventsRead, recordsExported })
    return { text, last: page.at(-1)?.position, ended }
  }

  let after: bigint | undefined
  while (through !== null && (after === undefined || after < through)) {
    // Other requests' work first: on PGlite every query of every request runs in one session, on this thread.
    if (after !== undefined) await setImmediate()
    const endTurn = await deps.pacer?.turn()
    let page: Awaited<ReturnType<typeof nextPage>>
    try {
      page = await nextPage(after)
    } finally {
      endTurn?.()
    }
    if (page.text !== '') yield page.text
    if (page.ended) break
    after = page.last
  }
  for (const [name, stream] of streams) if (stream.records === 0) streams.delete(name)
  return { streams, chainVerification: await chains.finish(), records: recordsExported, byType, recordsSha256: digest.hex() }
}

/** Each exported stream's entry in the manifest, with the whole stream's chain status from the tenant-wide verification. */
async function streamEntries(
  deps: ExportDeps,
  tenantId: string,
  streams: Map<string, StreamRecords>,
  chain: ChainVerification,
): Promise<ExportStream[]> {
  const breaks = new Map(chain.breaks.map((broken) => [broken.streamName, broken]))
  const partials = new Map(chain.partialStreams.map((partial) => [partial.streamName, partial]))
  // Beyond MAX_REPORTED_BREAKS the tenant-wide result only counts; then an unlisted stream is verified on its own.
  const listsComplete = chain.breaks.length === chain.brokenStreams && chain.partialStreams.length < MAX_REPORTED_BREAKS
  const entries: ExportStream[] = []
  for (const [stream, { taskId, firstRevision, lastRevision, records }] of streams) {
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
      firstRevision: firstRevision!,
      lastRevision: lastRevision!,
      records,
      chain: broken ? ExportChainStatus.broken : partial ? ExportChainStatus.partial : ExportChainStatus.intact,
      verifiedFromRevision: partial?.firstRevision ?? '0',
      chainBreak: broken ? exportChainBreak(broken) : null,
    })
  }
  return entries
}

/**
 * Exports one tenant's events from the event store (the source of truth, so the export is complete) as text, a chunk
 * per page read, in format version 2: a header line (tenant, window, the snapshot the read stops at), then every
 * event recorded in the window [from, to) (no bounds: the whole log) as stored, numbered by tenant sequence, in log
 * order, then a manifest line with the counts, each stream's exported revisions, the hash-chain verification of every
 * whole task stream of the tenant up to the snapshot (TenantChainWalk, fed the same reads), a SHA-256 of the
 * records and an HMAC of header and manifest with the tenant key. The read stops at the tenant's newest event when
 * the export began, so appends made meanwhile are not in it. Only the tenant's own streams are read. If reading fails
 * part way, the generator throws before the manifest line: what was written is recognisably cut short.
 *
 * Lazy: nothing is read until the first chunk is asked for, and returning the generator early (a destroyed stream)
 * stops the read at the next page. Call validateExportQuery first to refuse a bad request before sending anything.
 */
export async function* exportTenant(deps: ExportDeps, query: ExportQuery, format: ExportFormat): AsyncGenerator<string, void> {
  const valid = validateExportQuery(query)
  const pageSize = deps.pageSize ?? DEFAULT_PAGE_SIZE
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new RangeError(`exportTenant: pageSize must be a whole number >= 1, got ${pageSize}`)
  const clock = deps.clock ?? (() => new Date())
  const render = exportRenderer(format)
  const tenantKey = deps.keyRing.keyFor(valid.tenantId)
  const exportedAt = clock().toISOString()
  const head = await deps.store.readTenantHead(valid.tenantId)
  const through = head?.position ?? null
  const header: ExportHeader = {
    format: EXPORT_FORMAT,
    formatVersion: EXPORT_FORMAT_VERSION,
    part: 'header',
    tenantId: valid.tenantId,
    window: { from: valid.from?.toISOString() ?? null, to: valid.to?.toISOString() ?? null, on: 'recordedAt' },
    exportedAt,
    snapshot: head ? { eventId: head.eventId, sequence: head.tenantSequence?.toString() ?? null } : null,
  }
  yield render.header(header)

  const exported = yield* readRecords(deps, valid, through, pageSize, render)
  const { chainVerification } = exported
  const unsigned: Omit<ExportManifest, 'manifestHmac'> = {
    format: EXPORT_FORMAT,
    formatVersion: EXPORT_FORMAT_VERSION,
    part: 'manifest',
    counts: {
      records: exported.records,
      streams: exported.streams.size,
      byType: Object.fromEntries([...exported.byType].sort(([a], [b]) => (a < b ? -1 : 1))),
    },
    streams: await streamEntries(deps, valid.tenantId, exported.streams, chainVerification),
    chainVerification: exportChainVerification(chainVerification),
    recordsSha256: exported.recordsSha256,
  }
  // The HMAC is computed over the JSON form of header and manifest, exactly as a verifier will parse them back.
  const asParsed = (value: object) => JSON.parse(JSON.stringify(value)) as Record<string, unknown>
  const manifest: ExportManifest = { ...unsigned, manifestHmac: exportHmac(tenantKey, asParsed(header), asParsed(unsigned)) }
  deps.onManifest?.(manifest)
  yield render.manifest(manifest)
}
