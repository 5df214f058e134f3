import { createHash, createHmac } from 'node:crypto'
import { z } from 'zod'
import { canonicalJson } from '../../historian/integrity/chainHash'
import { ChainBreakKind, type ChainBreak, type ChainVerification } from '../../historian/integrity/verifyChain'

/** The `format` marker of every export's first line. */
export const EXPORT_FORMAT = 'annalist-export'
/** The version of the export layout that is written (docs/audit.md); version 1 files are still verified. */
export const EXPORT_FORMAT_VERSION = 2

/**
 * One stored event of an export, exactly as the event store holds it: not upcast, `data` and `metadata` as stored
 * (including `metadata.integrity`). `sequence` is the tenant-scoped sequence (1-based, in log order), never the
 * global position; sequences and revisions are decimal strings.
 */
export interface ExportRecord {
  readonly sequence: string
  readonly stream: string
  readonly revision: string
  readonly eventId: string
  readonly type: string
  /** `metadata.schemaVersion` as stored (the version the event was written at), or null if it has none. */
  readonly schemaVersion: number | null
  readonly recordedAt: string
  readonly data: unknown
  readonly metadata: Readonly<Record<string, unknown>>
}

/** A record of a version 1 export: the global position where version 2 has the tenant sequence. */
export type ExportRecordV1 = Omit<ExportRecord, 'sequence'> & { readonly position: string }

/**
 * A broken chain link as a version 2 export shows it: without the global position, which would show how busy other
 * tenants are. For an `out_of_order` break, whose expected and found values are positions, those are left out too.
 */
export type ExportChainBreak = Omit<ChainBreak, 'position'>

/** verifyChain's result as a version 2 export shows it: its breaks as ExportChainBreak. */
export type ExportChainVerification = Omit<ChainVerification, 'breaks' | 'firstBreak'> & {
  readonly breaks: readonly ExportChainBreak[]
  readonly firstBreak: ExportChainBreak | null
}

/** A chain break without global positions. */
export function exportChainBreak(broken: ChainBreak): ExportChainBreak {
  const { position: _position, ...rest } = broken
  if (broken.kind !== ChainBreakKind.OutOfOrder) return rest
  return { ...rest, expected: null, found: null, message: `revision ${broken.revision} was stored before the revision it follows: rows were moved in the global order` }
}

/** A chain verification without global positions. */
export function exportChainVerification(chain: ChainVerification): ExportChainVerification {
  return { ...chain, breaks: chain.breaks.map(exportChainBreak), firstBreak: chain.firstBreak && exportChainBreak(chain.firstBreak) }
}

/** How a whole stream's hash chain stood when it was exported (verifyChain over the stream, not just the window). */
export const ExportChainStatus = { intact: 'intact', partial: 'partial', broken: 'broken' } as const
export type ExportChainStatus = (typeof ExportChainStatus)[keyof typeof ExportChainStatus]

/** One exported stream in the manifest: which revisions the export holds and how the whole stream's chain verified. */
export interface ExportStream {
  readonly stream: string
  readonly taskId: string
  /** The first and last revision in the export; every revision between them is in it. */
  readonly firstRevision: string
  readonly lastRevision: string
  readonly records: number
  /** `partial`: retention hides the stream's first events, so its chain was verified from `verifiedFromRevision`. */
  readonly chain: ExportChainStatus
  readonly verifiedFromRevision: string
  /** The first broken link of the whole stream at export time, or null. */
  readonly chainBreak: ExportChainBreak | null
}

/** The closed-open window on `recordedAt` an export was asked for; null bounds are open. */
export interface ExportWindow {
  readonly from: string | null
  readonly to: string | null
  readonly on: 'recordedAt'
}

/**
 * Where a version 2 export's read of the log ends: the tenant's newest event when the export began. Events appended
 * later are not in it, so the export is a consistent prefix of the tenant's log. `sequence` is null where the store
 * does not number events at append (EventStoreDB); the export then numbers them itself.
 */
export interface ExportSnapshot {
  readonly eventId: string
  readonly sequence: string | null
}

/** The first line of a version 2 JSONL export (its leading `#` line in CSV): what was asked for, before any record. */
export interface ExportHeader {
  readonly format: typeof EXPORT_FORMAT
  readonly formatVersion: typeof EXPORT_FORMAT_VERSION
  readonly part: 'header'
  readonly tenantId: string
  readonly window: ExportWindow
  readonly exportedAt: string
  /** null when the tenant had no events when the export began. */
  readonly snapshot: ExportSnapshot | null
}

/**
 * The last line of a version 2 JSONL export (its trailing `#` line in CSV), written once every record was: what the
 * export holds and how it verified. An export without it was cut short.
 */
export interface ExportManifest {
  readonly format: typeof EXPORT_FORMAT
  readonly formatVersion: typeof EXPORT_FORMAT_VERSION
  readonly part: 'manifest'
  readonly counts: { readonly records: number; readonly streams: number; readonly byType: Readonly<Record<string, number>> }
  /** Every stream with records in the export, in order of first appearance. */
  readonly streams: readonly ExportStream[]
  /** The hash chains of every task stream of the tenant up to the snapshot (whole streams, not just the window). */
  readonly chainVerification: ExportChainVerification
  /** SHA-256 (hex) over the records: each record's RFC 8785 canonical JSON followed by `\n`, in export order. */
  readonly recordsSha256: string
  /** exportHmac over the header and the rest of this manifest. */
  readonly manifestHmac: string
}

/** The first line of a version 1 export, which held the whole manifest before the records. */
export interface ExportManifestV1 {
  readonly format: typeof EXPORT_FORMAT
  readonly formatVersion: 1
  readonly tenantId: string
  readonly window: ExportWindow
  readonly exportedAt: string
  readonly counts: ExportManifest['counts']
  readonly streams: readonly ExportStream[]
  readonly chainVerification: ChainVerification
  readonly recordsSha256: string
  /** HMAC-SHA256 (hex) with the tenant key over `annalist-export-manifest:` + the canonical JSON of the rest of the manifest. */
  readonly manifestHmac: string
}

/** The SHA-256 that `recordsSha256` holds, fed one record at a time: over each record's canonical JSON and a newline, in order. */
export class RecordsDigest {
  private readonly hash = createHash('sha256')

  add(record: unknown): void {
    this.hash.update(canonicalJson(record)).update('\n')
  }

  hex(): string {
    return this.hash.digest('hex')
  }
}

const MANIFEST_V1_DOMAIN = 'annalist-export-manifest:'
const EXPORT_V2_DOMAIN = 'annalist-export-v2:'

/**
 * A version 1 manifest's HMAC: tenant key over a fixed prefix and the canonical JSON of every manifest field but
 * `manifestHmac`. The prefix keeps it apart from chain links, whose input starts with a 64-hex-digit hash, and from
 * anchors (`anchor:`).
 */
export function manifestHmacV1(tenantKey: Uint8Array, manifest: Readonly<Record<string, unknown>>): string {
  const { manifestHmac: _ignored, ...rest } = manifest
  return createHmac('sha256', tenantKey).update(MANIFEST_V1_DOMAIN).update(canonicalJson(rest)).digest('hex')
}

/**
 * A version 2 export's HMAC, in its manifest: tenant key over a fixed prefix (its own, so no version 1 manifest or
 * chain link can be passed off as one) and the canonical JSON of `{ header, manifest }`, the manifest without
 * `manifestHmac`. It binds the header's tenant, window and snapshot to the manifest's counts and digest. Both are
 * taken in their JSON form, exactly as a verifier parses them back.
 */
export function exportHmac(tenantKey: Uint8Array, header: Readonly<Record<string, unknown>>, manifest: Readonly<Record<string, unknown>>): string {
  const { manifestHmac: _ignored, ...rest } = manifest
  return createHmac('sha256', tenantKey)
    .update(EXPORT_V2_DOMAIN)
    .update(canonicalJson({ header, manifest: rest }))
    .digest('hex')
}

const Digits = z.string().regex(/^\d{1,20}$/, 'must be a decimal string')
const Hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters')

const WindowShape = z.looseObject({ from: z.string().nullable(), to: z.string().nullable() })
const CountsShape = z.looseObject({ records: z.number().int().nonnegative(), streams: z.number().int().nonnegative() })
const StreamsShape = z.array(z.looseObject({ stream: z.string(), firstRevision: Digits, lastRevision: Digits, records: z.number().int().nonnegative() }))
const ChainShape = z.looseObject({ intact: z.boolean() })

/** What verifyExport needs of a version 1 manifest; other fields are kept as they are (the HMAC covers them all). */
export const ExportManifestV1Shape = z.looseObject({
  format: z.literal(EXPORT_FORMAT),
  formatVersion: z.literal(1),
  tenantId: z.string(),
  exportedAt: z.string(),
  window: WindowShape,
  counts: CountsShape,
  streams: StreamsShape,
  chainVerification: ChainShape,
  recordsSha256: Hex64,
  manifestHmac: Hex64,
})

/** What verifyExport needs of a version 2 header. */
export const ExportHeaderShape = z.looseObject({
  format: z.literal(EXPORT_FORMAT),
  formatVersion: z.literal(EXPORT_FORMAT_VERSION),
  part: z.literal('header'),
  tenantId: z.string(),
  exportedAt: z.string(),
  window: WindowShape,
})

/** What verifyExport needs of a version 2 manifest. */
export const ExportManifestShape = z.looseObject({
  format: z.literal(EXPORT_FORMAT),
  formatVersion: z.literal(EXPORT_FORMAT_VERSION),
  part: z.literal('manifest'),
  counts: CountsShape,
  streams: StreamsShape,
  chainVerification: ChainShape,
  recordsSha256: Hex64,
  manifestHmac: Hex64,
})
export type ExportManifestShape = z.infer<typeof ExportManifestShape>

const recordFields = {
  stream: z.string(),
  revision: Digits,
  eventId: z.string(),
  type: z.string(),
  schemaVersion: z.number().int().nullable(),
  recordedAt: z.string(),
  data: z.unknown(),
  metadata: z.record(z.string(), z.unknown()),
}

/** The shape of one version 2 record line; anything else on a record line counts as an altered record. */
export const ExportRecordShape = z.strictObject({ sequence: Digits, ...recordFields })

/** The shape of one version 1 record line. */
export const ExportRecordV1Shape = z.strictObject({ position: Digits, ...recordFields })
