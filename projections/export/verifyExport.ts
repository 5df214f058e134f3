import { timingSafeEqual } from 'node:crypto'
import type { z } from 'zod'
import { anchorHash, linkHash, storedIntegrity } from '../../historian/integrity/chainHash'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { ChainBreakKind } from '../../historian/integrity/verifyChain'
import { parseTaskStreamName } from '../../historian/streams'
import {
  EXPORT_FORMAT,
  ExportHeaderShape,
  ExportManifestShape,
  ExportManifestV1Shape,
  ExportRecordShape,
  ExportRecordV1Shape,
  exportHmac,
  manifestHmacV1,
  RecordsDigest,
} from './exportFormat'

/** Thrown when a text is not an Annalist export that can be read at all (no header or manifest line, another format, a bad tenant). */
export class ExportFormatError extends Error {
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`not a readable Annalist export (line ${line}): ${reason}`)
    this.name = 'ExportFormatError'
  }
}

/**
 * How an export can fail verification: the chain's own break kinds (ChainBreakKind, applied to the records of each
 * stream; a revision gap here is a record missing between two others), and the export's own.
 */
export const ExportProblemKind = {
  ...ChainBreakKind,
  /** The manifest's HMAC does not match: the manifest was edited, or the export was made under another key or tenant. */
  ManifestAltered: 'manifest_altered',
  /** The records' SHA-256 is not the manifest's: a record was edited, added, removed or moved. */
  RecordsDigestMismatch: 'records_digest_mismatch',
  /** The number of records or streams is not what the manifest says. */
  CountMismatch: 'count_mismatch',
  /** A record line is not a JSON record of the export's shape. */
  MalformedRecord: 'malformed_record',
  /** A record belongs to a stream of another tenant, or to no task stream at all. */
  ForeignRecord: 'foreign_record',
  /** A record's stream is not listed in the manifest. */
  UnlistedStream: 'unlisted_stream',
  /** A stream listed in the manifest has no record in the export. */
  MissingStream: 'missing_stream',
  /** A stream's records do not start or end at the manifest's revisions, or are not as many. */
  StreamMismatch: 'stream_mismatch',
} as const
export type ExportProblemKind = (typeof ExportProblemKind)[keyof typeof ExportProblemKind]

/** One problem found in an export. Never holds a hash computed with the key, only values already in the file. */
export interface ExportProblem {
  readonly kind: ExportProblemKind
  /** The stream concerned, or null for a problem of the whole file. */
  readonly stream: string | null
  readonly revision: string | null
  readonly eventId: string | null
  /** 1-based line of the export file, or null. */
  readonly line: number | null
  readonly message: string
}

/** What verifyExport found. Plain JSON. */
export interface ExportVerification {
  /** The export's format version: 2 (header first, manifest last) or 1 (manifest first). */
  readonly formatVersion: 1 | 2
  /** Every check passed: the export is exactly what was exported, under this key, and its records chain. */
  readonly ok: boolean
  readonly tenantId: string
  readonly exportedAt: string
  readonly window: { readonly from: string | null; readonly to: string | null }
  readonly records: number
  readonly streams: number
  /** What the manifest says the tenant-wide chain verification found when the export was made. */
  readonly chainIntactAtExport: boolean
  /** Problems of the whole file first, then the first problem of each stream, in file order. */
  readonly problems: readonly ExportProblem[]
  /** The first problem of a stream if any (the most specific), else the first problem of the file, else null. */
  readonly firstProblem: ExportProblem | null
  /** Streams whose records start after revision 0 (a window, or retention): their link to earlier events is not checked. */
  readonly unanchoredStreams: readonly { readonly stream: string; readonly firstRevision: string }[]
}

const sameHash = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))

function parseLine(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

/** How records are ordered in each format version: by global position (1) or tenant sequence (2). */
interface RecordOrder {
  readonly label: string
  of(record: { position?: string; sequence?: string }): bigint
}
const BY_POSITION: RecordOrder = { label: 'global position', of: (record) => BigInt(record.position!) }
const BY_SEQUENCE: RecordOrder = { label: 'sequence', of: (record) => BigInt(record.sequence!) }

type CheckedRecord = { stream: string; revision: string; eventId: string; type: string; data: unknown; metadata: Record<string, unknown>; position?: string; sequence?: string }

/** Walks one stream's records in file order and returns its first problem, if any. */
class StreamCheck {
  problem: ExportProblem | undefined
  records = 0
  firstRevision: bigint | undefined
  private lastRevision: bigint | undefined
  private lastHash: string | undefined
  private lastOrder: bigint | undefined

  constructor(
    private readonly tenantKey: Buffer,
    readonly stream: string,
    private readonly order: RecordOrder,
  ) {}

  get last(): bigint | undefined {
    return this.lastRevision
  }

  check(record: CheckedRecord, line: number): void {
    this.records++
    if (this.problem) return
    const revision = BigInt(record.revision)
    const order = this.order.of(record)
    const at = (kind: ExportProblemKind, message: string): ExportProblem => ({ kind, stream: this.stream, revision: record.revision, eventId: record.eventId, line, message })
    const integrity = storedIntegrity(record.metadata)
    if (!integrity) {
      this.problem = at(ExportProblemKind.MissingIntegrity, 'no valid metadata.integrity link')
      return
    }
    if (this.lastRevision !== undefined && revision !== this.lastRevision + 1n) {
      this.problem = at(ExportProblemKind.RevisionGap, `revision ${revision} follows revision ${this.lastRevision}: a record is missing or out of place`)
      return
    }
    if (this.lastOrder !== undefined && order <= this.lastOrder) {
      this.problem = at(ExportProblemKind.OutOfOrder, `${this.order.label} ${order} is not after the previous revision's ${this.lastOrder}`)
      return
    }
    if (revision === 0n && !sameHash(integrity.prevHash, anchorHash(this.tenantKey, this.stream))) {
      this.problem = at(ExportProblemKind.AnchorMismatch, "prevHash of revision 0 is not this tenant's anchor for the stream: another key or tenant, or a replaced first event")
      return
    }
    if (this.lastHash !== undefined && !sameHash(integrity.prevHash, this.lastHash)) {
      this.problem = at(ExportProblemKind.LinkBroken, `prevHash is not the hash of revision ${this.lastRevision}: a record was removed, replaced or reordered`)
      return
    }
    const recomputed = linkHash(this.tenantKey, integrity.prevHash, { streamName: this.stream, revision, eventId: record.eventId, type: record.type, data: record.data, metadata: record.metadata })
    if (!sameHash(recomputed, integrity.hash)) {
      this.problem = at(ExportProblemKind.ContentEdited, "the stored hash does not match the record's content under the tenant key: its data, metadata, type, ID, stream or revision was changed")
      return
    }
    this.firstRevision ??= revision
    this.lastRevision = revision
    this.lastHash = integrity.hash
    this.lastOrder = order
  }
}

/** What the first line says: the version, the tenant and its key, and (version 1) the manifest, or (version 2) the header. */
interface ExportStart {
  readonly formatVersion: 1 | 2
  readonly tenantId: string
  readonly tenantKey: Buffer
  readonly exportedAt: string
  readonly window: { readonly from: string | null; readonly to: string | null }
  readonly raw: Record<string, unknown>
}

/** `raw` as `shape` has it, or ExportFormatError naming the first field that is not (`what` says which line it is). */
function parseShape<T>(shape: z.ZodType<T>, raw: unknown, what: string, line: number): T {
  const parsed = shape.safeParse(raw)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]!
  throw new ExportFormatError(line, `${what} ${issue.path.join('.') || '(root)'}: ${issue.message}`)
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value)

/**
 * Checks an export line by line, holding O(streams) state, never the whole file. Version 1: the manifest is the first
 * line. Version 2: the header is the first line and the manifest the last, so each line is checked as a record only
 * once the next one arrived; at the end, the last line must be the manifest, or the export was cut short.
 */
class ExportVerifier {
  private start: ExportStart | undefined
  private manifestV1: z.infer<typeof ExportManifestV1Shape> | undefined
  /** The streams a version 1 manifest lists: known before the records (version 2 checks against its manifest at the end). */
  private listedV1: Set<string> | undefined
  private pending: { text: string; line: number } | undefined
  private lineCount = 0
  private recordLines = 0
  private readonly digest = new RecordsDigest()
  private parsedRecords = 0
  private readonly checks = new Map<string, StreamCheck>()
  private readonly streamProblems = new Map<string, ExportProblem>()
  private readonly fileProblems: ExportProblem[] = []
  private lastPosition: bigint | undefined

  constructor(private readonly keyRing: TenantKeyRing) {}

  /** The next line of the file, without its line break. */
  line(text: string): void {
    const line = ++this.lineCount
    if (text.endsWith('\r')) text = text.slice(0, -1)
    if (line === 1) {
      this.begin(text)
      return
    }
    if (this.start!.formatVersion === 1) {
      this.record(text, line)
      return
    }
    if (this.pending) this.record(this.pending.text, this.pending.line)
    this.pending = { text, line }
  }

  private begin(text: string): void {
    if (text.startsWith('#')) throw new ExportFormatError(1, 'this is a CSV export; verify-export checks JSONL exports (export again with --format jsonl)')
    const raw = parseLine(text)
    if (!isObject(raw) || raw.format !== EXPORT_FORMAT) throw new ExportFormatError(1, 'the first line is not an Annalist export header or manifest')
    let start: Omit<ExportStart, 'tenantKey'>
    if (raw.formatVersion === 1) {
      const manifest = parseShape(ExportManifestV1Shape, raw, 'manifest', 1)
      this.manifestV1 = manifest
      this.listedV1 = new Set(manifest.streams.map((entry) => entry.stream))
      start = { formatVersion: 1, tenantId: manifest.tenantId, exportedAt: manifest.exportedAt, window: manifest.window, raw }
    } else {
      const header = parseShape(ExportHeaderShape, raw, 'header', 1)
      start = { formatVersion: 2, tenantId: header.tenantId, exportedAt: header.exportedAt, window: header.window, raw }
    }
    let tenantKey: Buffer
    try {
      tenantKey = this.keyRing.keyFor(start.tenantId)
    } catch (error) {
      throw new ExportFormatError(1, `${start.formatVersion === 1 ? 'manifest' : 'header'} tenantId: ${(error as Error).message}`)
    }
    this.start = { ...start, tenantKey }
  }

  private fileProblem(kind: ExportProblemKind, message: string, line: number | null = null): void {
    this.fileProblems.push({ kind, stream: null, revision: null, eventId: null, line, message })
  }

  private record(text: string, line: number): void {
    const { formatVersion, tenantId, tenantKey } = this.start!
    this.recordLines++
    const raw = parseLine(text)
    if (raw !== undefined) {
      this.parsedRecords++
      this.digest.add(raw)
    }
    const record = formatVersion === 1 ? ExportRecordV1Shape.safeParse(raw) : ExportRecordShape.safeParse(raw)
    if (!record.success) {
      this.fileProblem(
        ExportProblemKind.MalformedRecord,
        `line ${line} is not an export record (${record.error.issues[0]?.path.join('.') || 'JSON'}: ${record.error.issues[0]?.message ?? 'unreadable'})`,
        line,
      )
      return
    }
    const data: CheckedRecord = record.data
    const { stream, revision, eventId } = data
    const streamProblem = (kind: ExportProblemKind, message: string) => {
      if (!this.streamProblems.has(stream)) this.streamProblems.set(stream, { kind, stream, revision, eventId, line, message })
    }
    let owner: string | undefined
    try {
      owner = parseTaskStreamName(stream).tenantId
    } catch {
      owner = undefined
    }
    if (owner !== tenantId) {
      streamProblem(ExportProblemKind.ForeignRecord, `${stream} is not a task stream of tenant ${tenantId}`)
      return
    }
    if (this.listedV1 && !this.listedV1.has(stream)) streamProblem(ExportProblemKind.UnlistedStream, `${stream} is not listed in the manifest`)
    if (formatVersion === 1) {
      // Version 1 files are in global order throughout; version 2 orders each stream (its digest fixes the rest).
      const position = BigInt(data.position!)
      if (this.lastPosition !== undefined && position <= this.lastPosition) {
        streamProblem(ExportProblemKind.OutOfOrder, `global position ${position} is not after the previous record's ${this.lastPosition}`)
      }
      this.lastPosition = position
    }
    let check = this.checks.get(stream)
    if (!check) {
      check = new StreamCheck(tenantKey, stream, formatVersion === 1 ? BY_POSITION : BY_SEQUENCE)
      this.checks.set(stream, check)
    }
    check.check(data, line)
    if (check.problem) streamProblem(check.problem.kind, check.problem.message)
  }

  /** Once the last line was given: the verdict. Throws ExportFormatError for an empty file or a version 2 export cut short. */
  finish(): ExportVerification {
    const start = this.start
    if (!start) throw new ExportFormatError(1, 'the file is empty')
    let manifest: z.infer<typeof ExportManifestV1Shape> | z.infer<typeof ExportManifestShape>
    let manifestLine = 1
    if (start.formatVersion === 1) {
      manifest = this.manifestV1!
      if (!sameHash(manifestHmacV1(start.tenantKey, start.raw), manifest.manifestHmac)) {
        this.fileProblem(ExportProblemKind.ManifestAltered, "the manifest's HMAC does not match under this tenant's key: the manifest was edited, or the export was made with another key", 1)
      }
    } else {
      const last = this.pending
      const raw = last === undefined ? undefined : parseLine(last.text)
      if (!last || !isObject(raw) || raw.part !== 'manifest') {
        throw new ExportFormatError(last?.line ?? 1, 'truncated export: no manifest line (the export was cut short)')
      }
      manifestLine = last.line
      const v2 = parseShape(ExportManifestShape, raw, 'manifest', last.line)
      manifest = v2
      const listed = new Set(v2.streams.map((entry) => entry.stream))
      for (const stream of this.checks.keys()) {
        if (!listed.has(stream) && !this.streamProblems.has(stream)) {
          this.streamProblems.set(stream, { kind: ExportProblemKind.UnlistedStream, stream, revision: null, eventId: null, line: null, message: `${stream} is not listed in the manifest` })
        }
      }
      if (!sameHash(exportHmac(start.tenantKey, start.raw, raw), v2.manifestHmac)) {
        this.fileProblem(
          ExportProblemKind.ManifestAltered,
          "the HMAC over header and manifest does not match under this tenant's key: either was edited, or the export was made with another key",
          manifestLine,
        )
      }
    }

    if (this.digest.hex() !== manifest.recordsSha256 || this.parsedRecords !== this.recordLines) {
      this.fileProblem(ExportProblemKind.RecordsDigestMismatch, "the records' SHA-256 is not the manifest's: a record was edited, added, removed or moved")
    }
    if (this.recordLines !== manifest.counts.records) this.fileProblem(ExportProblemKind.CountMismatch, `${this.recordLines} records, the manifest says ${manifest.counts.records}`)
    if (manifest.streams.length !== manifest.counts.streams) {
      this.fileProblem(ExportProblemKind.CountMismatch, `the manifest lists ${manifest.streams.length} streams but counts ${manifest.counts.streams}`)
    }

    for (const entry of manifest.streams) {
      const check = this.checks.get(entry.stream)
      const mismatch = (kind: ExportProblemKind, message: string) => {
        if (!this.streamProblems.has(entry.stream)) this.streamProblems.set(entry.stream, { kind, stream: entry.stream, revision: null, eventId: null, line: null, message })
      }
      if (!check) {
        mismatch(ExportProblemKind.MissingStream, `the manifest lists ${entry.stream} (revisions ${entry.firstRevision} to ${entry.lastRevision}) but the export has no record of it`)
        continue
      }
      if (check.problem) continue
      if (check.firstRevision !== BigInt(entry.firstRevision) || check.last !== BigInt(entry.lastRevision) || check.records !== entry.records) {
        mismatch(
          ExportProblemKind.StreamMismatch,
          `the export holds ${check.records} records, revisions ${check.firstRevision} to ${check.last}; the manifest says ${entry.records}, revisions ${entry.firstRevision} to ${entry.lastRevision}: records were removed or added at an end`,
        )
      }
    }

    const perStream = [...this.streamProblems.values()].sort((a, b) => (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER))
    const problems = [...this.fileProblems, ...perStream]
    return {
      formatVersion: start.formatVersion,
      ok: problems.length === 0,
      tenantId: start.tenantId,
      exportedAt: start.exportedAt,
      window: { from: start.window.from, to: start.window.to },
      records: this.recordLines,
      streams: this.checks.size,
      chainIntactAtExport: manifest.chainVerification.intact,
      problems,
      firstProblem: perStream[0] ?? this.fileProblems[0] ?? null,
      unanchoredStreams: [...this.checks.values()]
        .filter((check) => check.firstRevision !== undefined && check.firstRevision > 0n)
        .map((check) => ({ stream: check.stream, firstRevision: check.firstRevision!.toString() })),
    }
  }
}

/**
 * Checks a JSONL export offline, with nothing but the export and the integrity key ring, version 2 or 1: the HMAC
 * under the tenant's key (version 2: over header and manifest; version 1: over the manifest), the records' SHA-256 and
 * counts against the manifest, order, and for every stream that each record's hash recomputes from its content, that
 * consecutive revisions link (prevHash = previous hash) with no gap, that revision 0 chains from the tenant's anchor,
 * and that the stream's records run from the manifest's first to its last revision. Reports the first problem per
 * stream. Throws ExportFormatError when the text is not a readable export, or a version 2 export has no manifest line.
 */
export function verifyExport(text: string, format: 'jsonl', keyRing: TenantKeyRing): ExportVerification {
  if (format !== 'jsonl') throw new ExportFormatError(1, `verifyExport reads JSONL exports, not ${JSON.stringify(format)}`)
  const lines = text.split('\n')
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop()
  const verifier = new ExportVerifier(keyRing)
  for (const line of lines) verifier.line(line)
  return verifier.finish()
}

/** verifyExport over the lines of an export as they are read (a file through readline): holds one line at a time. */
export async function verifyExportLines(lines: AsyncIterable<string>, keyRing: TenantKeyRing): Promise<ExportVerification> {
  const verifier = new ExportVerifier(keyRing)
  for await (const line of lines) verifier.line(line)
  return verifier.finish()
}
