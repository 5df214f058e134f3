import { lstat, open, unlink } from 'node:fs/promises'
import { exportTenant, renderExport, validateExportQuery, type ExportFormat } from '../../projections/export/tenantExport'
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
 * store with a signed manifest holding the hash-chain verification, to stdout or a file. Live counts go to stderr.
 * The request is validated, and the integrity key required, before anything is read.
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
  let text: string
  let summary: string
  try {
    const indicator = startActivityIndicator({ label: `exporting tenant ${options.tenant}`, countLabel: 'pages read' })
    try {
      const exported = await exportTenant(
        {
          store: storage.store,
          keyRing,
          onProgress: (progress) => indicator.tick(`${progress.eventsRead} events read, ${progress.recordsExported} exported`),
        },
        { tenantId: options.tenant, from: options.from, to: options.to },
      )
      const { manifest } = exported
      if (manifest.chainVerification.eventsChecked === 0) throw new Error(`nothing to export: tenant ${options.tenant} has no events`)
      text = renderExport(exported, options.format)
      const chains = manifest.chainVerification.intact
        ? 'hash chains intact'
        : `TAMPERING DETECTED in ${manifest.chainVerification.brokenStreams} stream(s) (see the manifest's chainVerification)`
      summary = `exported ${manifest.counts.records} events of ${manifest.counts.streams} streams of tenant ${options.tenant}${options.out ? ` to ${options.out}` : ''}; ${chains}`
    } finally {
      indicator.stop()
    }
  } finally {
    await storage.close()
  }
  if (options.out) await writeNewFile(options.out, text)
  else process.stdout.write(text)
  process.stderr.write(`${summary}\n`)
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
 * Creates `out` with O_CREAT | O_EXCL (flag `wx`), owner-only (0600), and writes `text`: the exclusive create fails on
 * anything that appeared there since the check, a symlink included, so an export never writes through one. A failed
 * write removes the partial file.
 */
async function writeNewFile(out: string, text: string): Promise<void> {
  const file = await open(out, 'wx', 0o600).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'EEXIST' ? new ExportPathExistsError(out) : error
  })
  try {
    await file.writeFile(text)
    await file.sync()
  } catch (error) {
    await file.close().catch(() => undefined)
    await unlink(out).catch(() => undefined)
    throw error
  }
  await file.close()
}
