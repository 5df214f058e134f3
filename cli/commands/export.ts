import { lstat, open, unlink } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { exportTenant, validateExportQuery, type ExportFormat, type ExportManifest } from '../../projections/export/tenantExport'
import { loadConfig, requireIntegrityKeyRing } from '../runtime/config'
import { startActivityIndicator } from '../runtime/progress'
import { openStorage } from '../runtime/storage'
import { asOptionError } from './audit'

/** The options of `annalist export`, as commander parses them. */
export interface ExportOptions {
  readonly tenant: string
  readonly from?: string
  readonly to?: string
  readonly format: ExportFormat
  readonly out?: string
}

/**
 * `annalist export --tenant T [--from] [--to] [--format jsonl|csv] [--out FILE]`: the tenant's events from the event
 * store with a signed manifest holding the hash-chain verification, to stdout or a file, written as they are read
 * (exportTenant, the stream the API sends too). Live counts go to stderr. The request is validated, and the integrity
 * key required, before anything is read. If the export fails part way, `--out` leaves no file; on stdout what was
 * written has no manifest line, and verify-export refuses it.
 */
export async function exportCommand(options: ExportOptions): Promise<void> {
  try {
    validateExportQuery({ tenantId: options.tenant, from: options.from, to: options.to })
  } catch (error) {
    asOptionError(error)
  }
  if (options.out !== undefined) await refuseExistingPath(options.out)
  const config = loadConfig()
  const keyRing = requireIntegrityKeyRing(config)
  const storage = await openStorage(config)
  let manifest: ExportManifest | undefined
  try {
    if ((await storage.store.readTenantHead(options.tenant)) === undefined) throw new Error(`nothing to export: tenant ${options.tenant} has no events`)
    const indicator = startActivityIndicator({ label: `exporting tenant ${options.tenant}`, countLabel: 'pages read' })
    try {
      const lines = exportTenant(
        {
          store: storage.store,
          keyRing,
          onProgress: (progress) => indicator.tick(`${progress.eventsRead} events read, ${progress.recordsExported} exported`),
          onManifest: (written) => (manifest = written),
        },
        { tenantId: options.tenant, from: options.from, to: options.to },
        options.format,
      )
      if (options.out) await writeNewFile(options.out, lines)
      else await pipeline(lines, process.stdout, { end: false })
    } finally {
      indicator.stop()
    }
  } finally {
    await storage.close()
  }
  const chains = manifest!.chainVerification.intact
    ? 'hash chains intact'
    : `TAMPERING DETECTED in ${manifest!.chainVerification.brokenStreams} stream(s) (see the manifest's chainVerification)`
  process.stderr.write(`exported ${manifest!.counts.records} events of ${manifest!.counts.streams} streams of tenant ${options.tenant}${options.out ? ` to ${options.out}` : ''}; ${chains}\n`)
}

/** Thrown when `export --out` names a path that already exists (a file, a directory or a symlink, even a dangling one). */
export class ExportPathExistsError extends Error {
  constructor(readonly path: string) {
    super(`refusing to write the export to ${path}: it already exists (an export never overwrites a file or follows a symlink)`)
    this.name = 'ExportPathExistsError'
  }
}

/** Checked before anything is read, so a mistaken --out costs nothing. */
async function refuseExistingPath(out: string): Promise<void> {
  const existing = await lstat(out).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined
    throw error
  })
  if (existing !== undefined) throw new ExportPathExistsError(out)
}

/**
 * Creates `out` with O_CREAT | O_EXCL (flag `wx`), owner-only (0600), and writes `lines` to it as they come: the
 * exclusive create fails on anything that appeared there since the check, a symlink included, so an export never
 * writes through one. A failed write (or a failed read of the export) removes the partial file.
 */
async function writeNewFile(out: string, lines: AsyncIterable<string>): Promise<void> {
  const file = await open(out, 'wx', 0o600).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'EEXIST' ? new ExportPathExistsError(out) : error
  })
  try {
    // flush: synced to disk before the stream closes the file, which it does when done or destroyed.
    await pipeline(lines, file.createWriteStream({ flush: true }))
  } catch (error) {
    await file.close().catch(() => undefined)
    await unlink(out).catch(() => undefined)
    throw error
  }
}
