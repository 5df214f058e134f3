import { open, type FileHandle } from 'node:fs/promises'
import { verifyExportLines, type ExportProblem, type ExportVerification } from '../../projections/export/tenantExport'
import { loadConfig, requireIntegrityKeyRing } from '../runtime/config'
import { TAMPERING_EXIT_CODE } from './verify'

function describeProblem(problem: ExportProblem): string {
  const where = problem.stream === null ? 'file' : `stream ${problem.stream}${problem.revision === null ? '' : ` revision ${problem.revision}`}`
  return `${where}${problem.line === null ? '' : ` (line ${problem.line})`}: ${problem.kind}: ${problem.message}`
}

function report(result: ExportVerification): string[] {
  const window = result.window.from === null && result.window.to === null ? 'whole log' : `recorded ${result.window.from ?? '(start)'} to ${result.window.to ?? '(end)'}`
  const scope = `export of tenant ${result.tenantId} (${result.records} records, ${result.streams} streams, ${window}, exported ${result.exportedAt})`
  const lines = result.ok
    ? [`${scope}: verified, unaltered`]
    : [`${scope}: ALTERED, ${result.problems.length} problem(s)`, `first problem: ${describeProblem(result.firstProblem!)}`]
  for (const problem of result.problems) if (problem !== result.firstProblem) lines.push(`  ${describeProblem(problem)}`)
  if (result.unanchoredStreams.length > 0) {
    lines.push(`${result.unanchoredStreams.length} stream(s) start after revision 0 (window or retention); their link to earlier events is not checked here`)
  }
  lines.push(`hash chains when exported: ${result.chainIntactAtExport ? 'intact' : 'BROKEN (see the manifest)'}`)
  return lines
}

/**
 * `annalist verify-export FILE`: checks a JSONL export (format version 2, or 1) offline with the configured integrity
 * key, line by line. Exits 0 when it is unaltered, 2 when it was altered (or made under another key), 1 on errors
 * (unreadable file, no key, not an export, an export cut short before its manifest line).
 */
export async function verifyExportCommand(path: string, options: { format: 'table' | 'json' }): Promise<void> {
  const keyRing = requireIntegrityKeyRing(loadConfig())
  let file: FileHandle
  try {
    file = await open(path, 'r')
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  let result: ExportVerification
  try {
    // Line by line: an export is verified in O(streams) memory, however large the file.
    result = await verifyExportLines(file.readLines({ encoding: 'utf8' }), keyRing)
  } finally {
    await file.close().catch(() => undefined)
  }
  if (options.format === 'json') console.log(JSON.stringify(result, null, 2))
  else for (const line of report(result)) console.log(line)
  if (!result.ok) process.exitCode = TAMPERING_EXIT_CODE
}
