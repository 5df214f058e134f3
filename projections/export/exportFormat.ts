import { createHash, createHmac } from 'node:crypto'
import { z } from 'zod'
import { canonicalJson } from '../../historian/integrity/chainHash'
import type { ChainBreak, ChainVerification } from '../../historian/integrity/verifyChain'

/** The `format` marker of every export manifest. */
export const EXPORT_FORMAT = 'annalist-export'
/** The version of the export layout described in docs/audit.md. */
export const EXPORT_FORMAT_VERSION = 1

/**
 * One stored event of an export, exactly as the event store holds it: not upcast, `data` and `metadata` as stored
 * (including `metadata.integrity`). Positions and revisions are decimal strings.
 */
export interface ExportRecord {
  readonly position: string
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
  readonly chainBreak: ChainBreak | null
}

/** The first line of a JSONL export (the leading `#` line of a CSV one): what the export holds and how it verified. */
export interface ExportManifest {
  readonly format: typeof EXPORT_FORMAT
  readonly formatVersion: typeof EXPORT_FORMAT_VERSION
  readonly tenantId: string
  /** The closed-open window on `recordedAt` the export was asked for; null bounds are open. */
  readonly window: { readonly from: string | null; readonly to: string | null; readonly on: 'recordedAt' }
  readonly exportedAt: string
  readonly counts: { readonly records: number; readonly streams: number; readonly byType: Readonly<Record<string, number>> }
  /** Every stream with records in the export, in order of first appearance. */
  readonly streams: readonly ExportStream[]
  /** verifyChain over every task stream of the tenant, run right after the records were read. */
  readonly chainVerification: ChainVerification
  /** SHA-256 (hex) over the records: each record's RFC 8785 canonical JSON followed by `\n`, in export order. */
  readonly recordsSha256: string
  /** HMAC-SHA256 (hex) with the tenant key over `annalist-export-manifest:` + the canonical JSON of the rest of the manifest. */
  readonly manifestHmac: string
}

/** An export: the manifest and the records, in global log order. */
export interface TenantExport {
  readonly manifest: ExportManifest
  readonly records: readonly ExportRecord[]
}

/** The SHA-256 that `recordsSha256` holds: over each record's canonical JSON and a newline, in order. */
export function recordsDigest(records: readonly unknown[]): string {
  const hash = createHash('sha256')
  for (const record of records) hash.update(canonicalJson(record)).update('\n')
  return hash.digest('hex')
}

const MANIFEST_DOMAIN = 'annalist-export-manifest:'

/**
 * The manifest's HMAC: tenant key over a fixed prefix and the canonical JSON of every manifest field but `manifestHmac`.
 * The prefix keeps it apart from chain links, whose input starts with a 64-hex-digit hash, and from anchors (`anchor:`).
 */
export function manifestHmac(tenantKey: Uint8Array, manifest: Readonly<Record<string, unknown>>): string {
  const { manifestHmac: _ignored, ...rest } = manifest
  return createHmac('sha256', tenantKey).update(MANIFEST_DOMAIN).update(canonicalJson(rest)).digest('hex')
}

const Digits = z.string().regex(/^\d{1,20}$/, 'must be a decimal string')
const Hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters')

/** What verifyExport needs of a manifest; other fields are kept as they are (the HMAC covers them all). */
export const ExportManifestShape = z.looseObject({
  format: z.literal(EXPORT_FORMAT),
  formatVersion: z.literal(EXPORT_FORMAT_VERSION),
  tenantId: z.string(),
  exportedAt: z.string(),
  window: z.looseObject({ from: z.string().nullable(), to: z.string().nullable() }),
  counts: z.looseObject({ records: z.number().int().nonnegative(), streams: z.number().int().nonnegative() }),
  streams: z.array(z.looseObject({ stream: z.string(), firstRevision: Digits, lastRevision: Digits, records: z.number().int().nonnegative() })),
  chainVerification: z.looseObject({ intact: z.boolean() }),
  recordsSha256: Hex64,
  manifestHmac: Hex64,
})
export type ExportManifestShape = z.infer<typeof ExportManifestShape>

/** The shape of one record line; anything else on a record line counts as an altered record. */
export const ExportRecordShape = z.strictObject({
  position: Digits,
  stream: z.string(),
  revision: Digits,
  eventId: z.string(),
  type: z.string(),
  schemaVersion: z.number().int().nullable(),
  recordedAt: z.string(),
  data: z.unknown(),
  metadata: z.record(z.string(), z.unknown()),
})
