import { assertTaskId, assertTenantId } from '../../historian/streams'
import { loadConfig } from '../runtime/config'
import { formatRows, type OutputColumn } from '../runtime/output'
import { diffRuns, runsOf, type DiffRow, type RunFacts } from '../runtime/runDiff'
import { openStorage } from '../runtime/storage'
import { terminalSafe } from '../runtime/terminalText'

const COLUMNS: readonly OutputColumn<DiffRow & { mark: string }>[] = [
  { key: 'step', header: 'step' },
  { key: 'field', header: 'field' },
  { key: 'against', header: 'against' },
  { key: 'run', header: 'run' },
  { key: 'mark', header: 'changed' },
]

function describe(run: RunFacts): string {
  const lineage = run.parentRunId ? `${run.reason} of ${run.parentRunId} from ${run.fromStep}` : 'original run'
  return `${run.runId} (${lineage}, by ${run.requestedBy}${run.overrides ? `, ${run.overrides}` : ''})`
}

/**
 * `annalist diff --tenant T --task K [--run A --against B] [--format table|json]`: compares two runs of a task step by
 * step, from the event store (docs/replay.md). Default: the latest run against its parent. Exits 0 when printed
 * (differences or not), 1 on errors (unknown task or run, or a run with nothing to compare with).
 */
export async function diffCommand(options: { tenant: string; task: string; run?: string; against?: string; format: 'table' | 'json' }): Promise<void> {
  const tenantId = assertTenantId(options.tenant)
  const taskId = assertTaskId(options.task)
  const storage = await openStorage(loadConfig())
  let runs: RunFacts[]
  try {
    runs = runsOf((await storage.historian.readTask(tenantId, taskId)).events)
  } finally {
    await storage.close()
  }
  if (runs.length === 0) throw new Error(`task ${tenantId}/${taskId} has no runs (no events in its stream)`)
  const known = () => runs.map((run) => run.runId).join(', ')
  const find = (runId: string, option: string) => {
    const found = runs.find((run) => run.runId === runId)
    if (!found) throw new Error(`${option} ${runId} is not a run of ${tenantId}/${taskId}; its runs are ${known()}`)
    return found
  }
  const run = options.run === undefined ? runs[runs.length - 1]! : find(options.run, '--run')
  const againstId = options.against ?? run.parentRunId
  if (againstId === undefined) throw new Error(`run ${run.runId} of ${tenantId}/${taskId} has no parent run; name one with --against (runs: ${known()})`)
  const against = find(againstId, options.against === undefined ? 'parent run' : '--against')
  const diff = diffRuns(run, against)

  if (options.format === 'json') {
    console.log(JSON.stringify({ tenantId, taskId, ...diff }, null, 2))
    return
  }
  console.log(`task     ${tenantId}/${taskId}`)
  console.log(`run      ${describe(run)}`)
  console.log(`against  ${describe(against)}`)
  console.log(formatRows(diff.rows.map((row) => ({ ...row, mark: row.changed ? '*' : '' })), COLUMNS, 'table'))
  if (diff.answerDiff) console.log(`answer diff:\n${terminalSafe(diff.answerDiff)}`)
  console.log(`${diff.changedFields} field(s) changed`)
}
