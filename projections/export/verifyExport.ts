import { timingSafeEqual } from 'node:crypto'
import { anchorHash, linkHash, storedIntegrity } from '../../historian/integrity/chainHash'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { ChainBreakKind } from '../../historian/integrity/verifyChain'
import { parseTaskStreamName } from '../../historian/streams'
import { ExportManifestShape, ExportRecordShape, manifestHmac, recordsDigest } from './exportFormat'

/** Thrown when a text is not an Annalist export that can be read at all (no manifest line, another format, a bad tenant). */
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

/** Walks one stream's records in file order and returns its first problem, if any. */
class StreamCheck {
  problem: ExportProblem | undefined
  records = 0
  firstRevision: bigint | undefined
  private lastRevision: bigint | undefined
  private lastHash: string | undefined
  private lastPosition: bigint | undefined

  constructor(
    private readonly tenantKey: Buffer,
    readonly stream: string,
  ) {}

  get last(): bigint | undefined {
    return this.lastRevision
  }

  check(record: { revision: string; position: string; eventId: string; type: string; data: unknown; metadata: Record<string, unknown> }, line: number): void {
    this.records++
    if (this.problem) return
    const revision = BigInt(record.revision)
    const position = BigInt(record.position)
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
    if (this.lastPosition !== undefined && position <= this.lastPosition) {
      this.problem = at(ExportProblemKind.OutOfOrder, `global position ${position} is not after the previous revision's ${this.lastPosition}`)
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
    this.lastPosition = position
  }
}

/**
 * Checks a JSONL export offline, with nothing but the file and the integrity key ring: the manifest's HMAC under the
 * tenant's key, the records' SHA-256 and counts against the manifest, global order, and for every stream that each
 * record's hash recomputes from its content, that consecutive revisions link (prevHash = previous hash) with no gap,
 * that revision 0 chains from the tenant's anchor, and that the stream's records run from the manifest's first to its
 * last revision. Reports the first problem per stream. Throws ExportFormatError when the text is not a readable export.
 */
export function verifyExport(text: string, format: 'jsonl', keyRing: TenantKeyRing): ExportVerification {
  if (format !== 'jsonl') throw new ExportFormatError(1, `verifyExport reads JSONL exports, not ${JSON.stringify(format)}`)
  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line))
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop()
  const rawManifest = parseLine(lines[0] ?? '')
  if (rawManifest === null || typeof rawManifest !== 'object' || Array.isArray(rawManifest)) {
    throw new ExportFormatError(1, 'the first line is not a JSON manifest')
  }
  const parsed = ExportManifestShape.safeParse(rawManifest)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new ExportFormatError(1, `manifest ${issue.path.join('.') || '(root)'}: ${issue.message}`)
  }
  const manifest = parsed.data
  let tenantKey: Buffer
  let tenantId: string
  try {
    tenantKey = keyRing.keyFor(manifest.tenantId)
    tenantId = manifest.tenantId
  } catch (error) {
    throw new ExportFormatError(1, `manifest tenantId: ${(error as Error).message}`)
  }

  const fileProblems: ExportProblem[] = []
  const fileProblem = (kind: ExportProblemKind, message: string, line: number | null = null) => fileProblems.push({ kind, stream: null, revision: null, eventId: null, line, message })
  if (!sameHash(manifestHmac(tenantKey, rawManifest as Record<string, unknown>), manifest.manifestHmac)) {
    fileProblem(ExportProblemKind.ManifestAltered, "the manifest's HMAC does not match under this tenant's key: the manifest was edited, or the export was made with another key", 1)
  }

  const listed = new Map(manifest.streams.map((entry) => [entry.stream, entry]))
  const checks = new Map<string, StreamCheck>()
  const streamProblems = new Map<string, ExportProblem>()
  const rawRecords: unknown[] = []
  let lastPosition: bigint | undefined
  for (let index = 1; index < lines.length; index++) {
    const line = index + 1
    const raw = parseLine(lines[index]!)
    if (raw !== undefined) rawRecords.push(raw)
    const record = ExportRecordShape.safeParse(raw)
    if (!record.success) {
      fileProblem(ExportProblemKind.MalformedRecord, `line ${line} is not an export record (${record.error.issues[0]?.path.join('.') || 'JSON'}: ${record.error.issues[0]?.message ?? 'unreadable'})`, line)
      continue
    }
    const { stream, revision, eventId, position } = record.data
    const streamProblem = (kind: ExportProblemKind, message: string) => {
      if (!streamProblems.has(stream)) streamProblems.set(stream, { kind, stream, revision, eventId, line, message })
    }
    let owner: string | undefined
    try {
      owner = parseTaskStreamName(stream).tenantId
    } catch {
      owner = undefined
    }
    if (owner !== tenantId) {
      streamProblem(ExportProblemKind.ForeignRecord, `${stream} is not a task stream of tenant ${tenantId}`)
      continue
    }
    if (!listed.has(stream)) streamProblem(ExportProblemKind.UnlistedStream, `${stream} is not listed in the manifest`)
    if (lastPosition !== undefined && BigInt(position) <= lastPosition) {
      streamProblem(ExportProblemKind.OutOfOrder, `global position ${position} is not after the previous record's ${lastPosition}`)
    }
    lastPosition = BigInt(position)
    let check = checks.get(stream)
    if (!check) {
      check = new StreamCheck(tenantKey, stream)
      checks.set(stream, check)
    }
    check.check(record.data, line)
    if (check.problem) streamProblem(check.problem.kind, check.problem.message)
  }

  if (recordsDigest(rawRecords) !== manifest.recordsSha256 || rawRecords.length !== lines.length - 1) {
    fileProblem(ExportProblemKind.RecordsDigestMismatch, "the records' SHA-256 is not the manifest's: a record was edited, added, removed or moved")
  }
  if (lines.length - 1 !== manifest.counts.records) fileProblem(ExportProblemKind.CountMismatch, `${lines.length - 1} records, the manifest says ${manifest.counts.records}`)
  if (manifest.streams.length !== manifest.counts.streams) fileProblem(ExportProblemKind.CountMismatch, `the manifest lists ${manifest.streams.length} streams but counts ${manifest.counts.streams}`)

  for (const entry of manifest.streams) {
    const check = checks.get(entry.stream)
    const mismatch = (kind: ExportProblemKind, message: string) => {
      if (!streamProblems.has(entry.stream)) streamProblems.set(entry.stream, { kind, stream: entry.stream, revision: null, eventId: null, line: null, message })
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

  const perStream = [...streamProblems.values()].sort((a, b) => (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER))
  const problems = [...fileProblems, ...perStream]
  return {
    ok: problems.length === 0,
    tenantId,
    exportedAt: manifest.exportedAt,
    window: { from: manifest.window.from, to: manifest.window.to },
    records: lines.length - 1,
    streams: checks.size,
    chainIntactAtExport: manifest.chainVerification.intact,
    problems,
    firstProblem: perStream[0] ?? fileProblems[0] ?? null,
    unanchoredStreams: [...checks.values()]
      .filter((check) => check.firstRevision !== undefined && check.firstRevision > 0n)
      .map((check) => ({ stream: check.stream, firstRevision: check.firstRevision!.toString() })),
  }
}
