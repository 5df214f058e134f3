import cliProgress from 'cli-progress'
import { defaultProjections } from '../../projections/defaultProjections'
import { rebuildProjections, type RebuildResult } from '../../projections/rebuild'
import { UnknownProjectionError } from '../../projections/retryProjectionDeadLetters'
import { authorizeCaller } from '../runtime/callerPermission'
import { loadConfig } from '../runtime/config'
import { openStorage } from '../runtime/storage'
import { parseWholeNumber } from './lag'

function report(result: RebuildResult): string {
  const rows = Object.entries(result.rows).map(([table, count]) => `${table} ${count} rows`)
  const lines = [
    `${result.projection}: rebuilt ${result.events} events up to position ${result.position} and swapped in: ${rows.join(', ')}; ` +
      `${result.deadLetters.length} dead letter(s)${result.resolvedDeadLetters.length > 0 ? `, ${result.resolvedDeadLetters.length} resolved` : ''}`,
    result.matchedIncremental
      ? `${result.projection}: equal to the incremental read model it replaced`
      : `${result.projection}: DIFFERED from the incremental read model it replaced (${result.differences.length} difference(s)):`,
    ...result.differences.map((difference) => `  ${difference}`),
  ]
  return lines.join('\n')
}

/**
 * `annalist rebuild <projection|all>`: rebuilds into fresh tables with a progress bar per projection (the log is read
 * once for all of them), swaps them in atomically, then prints rows per table and whether the result equals the
 * incremental read model it replaced (exit 2 if not).
 */
export async function rebuildCommand(name: string, options: { batchSize: string }): Promise<void> {
  const batchSize = parseWholeNumber(options.batchSize, '--batch-size', 1, 100_000)
  const all = defaultProjections()
  const chosen = name === 'all' ? all : all.filter((projection) => projection.name === name)
  if (chosen.length === 0) throw new UnknownProjectionError(name, [...all.map((projection) => projection.name), 'all'])
  const config = loadConfig()
  const storage = await openStorage(config)
  try {
    await authorizeCaller(storage.database.pool, config.apiKey, 'projection.rebuild', null)
  } catch (error) {
    await storage.close()
    throw error
  }
  const bars = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      format: '{projection} | {bar} | {value}/{total} events | {eta_formatted}',
      noTTYOutput: true,
      notTTYSchedule: 5_000,
      clearOnComplete: false,
      hideCursor: process.stderr.isTTY ? true : null,
    },
    cliProgress.Presets.shades_classic,
  )
  const barOf = new Map(chosen.map((projection) => [projection.name, bars.create(1, 0, { projection: projection.name })]))
  try {
    const results = await rebuildProjections(storage.store, storage.database.pool, chosen, {
      batchSize,
      onProgress: (progress) => {
        const bar = barOf.get(progress.projection)
        bar?.setTotal(Math.max(Number(progress.target), progress.events))
        bar?.update(progress.events)
      },
    })
    for (const result of results) {
      const bar = barOf.get(result.projection)
      bar?.setTotal(Math.max(result.events, 1))
      bar?.update(result.events)
    }
    bars.stop()
    for (const result of results) console.log(report(result))
    if (results.some((result) => !result.matchedIncremental)) process.exitCode = 2
  } finally {
    bars.stop()
    await storage.close()
  }
}
