import { loadTaskState, type LoadedTaskState, type StateTarget } from '../../historian/loadTaskState'
import { PostgresSnapshotStore } from '../../historian/snapshots/postgresSnapshotStore'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import { InvalidQueryError, parseIsoInstant } from '../../projections/queryFilters'
import { loadConfig } from '../runtime/config'
import { openStorage } from '../runtime/storage'
import { terminalSafe } from '../runtime/terminalText'

/** Parses `--at`: a whole number is a stream revision, anything else must be an ISO 8601 time with a zone. */
export function parseStateTarget(at: string | undefined): StateTarget | undefined {
  if (at === undefined) return undefined
  const text = at.trim()
  if (/^\d{1,18}$/.test(text)) return { revision: BigInt(text) }
  try {
    return { timestamp: parseIsoInstant('--at', text, { requireTime: true }) }
  } catch (error) {
    if (!(error instanceof InvalidQueryError)) throw error
    throw new RangeError(`--at must be a revision (a whole number >= 0) or an ISO 8601 time with a zone, e.g. 2026-02-03T14:22:10Z; got ${JSON.stringify(at)} (${error.reason})`)
  }
}

function tableLines(tenantId: string, taskId: string, loaded: LoadedTaskState): string[] {
  const { state } = loaded
  const lines = [
    `task           ${tenantId}/${taskId}  (stream ${loaded.streamName})`,
    `as of          revision ${loaded.revision}, recorded ${loaded.recordedAt.toISOString()}`,
    `folded         ${loaded.usedSnapshot ? `snapshot at revision ${loaded.snapshotRevision} + ${loaded.eventsFolded} event(s)` : `${loaded.eventsFolded} event(s), no snapshot`}`,
    `status         ${state.status}${state.status === 'failed' ? ` at step ${state.failedStep} with ${state.errorCode}` : ''}`,
    `current step   ${state.currentStep}`,
  ]
  if (state.route !== undefined) lines.push(`route          ${state.route}${state.candidateRoutes ? `  (offered: ${state.candidateRoutes.join(', ')})` : ''}`)
  lines.push(`tool calls     ${state.toolCalls.length} planned, ${Object.keys(state.toolOutcomes).length} finished`)
  for (const call of state.toolCalls) {
    const outcome = state.toolOutcomes[call.toolCallId]
    const shown = !outcome ? 'pending' : outcome.ok ? `ok${outcome.sideEffectId ? `, side effect ${outcome.sideEffectId}` : ''}` : `failed with ${outcome.errorCode}`
    lines.push(`  ${call.toolCallId.padEnd(12)} ${call.toolName.padEnd(24)} ${shown}`)
  }
  lines.push(
    `model failures ${state.modelAttemptsFailed}`,
    `tokens         ${state.totalTokens}`,
    `cost (USD)     ${Number(state.totalCostUsd.toFixed(9))}`,
    `events         ${state.eventsApplied}${state.lastOccurredAt ? `, last occurred at ${state.lastOccurredAt}` : ''}`,
  )
  if (state.answer !== undefined) lines.push(`answer         ${state.answer.replace(/\n/g, '\n               ')}`)
  return lines
}

/**
 * `annalist state --tenant T --task K [--at <revision|timestamp>]`: the task as its events describe it, now or at that
 * point. IDs and `--at` are checked before storage is opened; a point outside the stream is a one-line error.
 */
export async function stateCommand(options: { tenant: string; task: string; at?: string; format: 'table' | 'json' }): Promise<void> {
  const tenantId = assertTenantId(options.tenant)
  const taskId = assertTaskId(options.task)
  const at = parseStateTarget(options.at)
  const storage = await openStorage(loadConfig())
  try {
    const loaded = await loadTaskState({ store: storage.store, snapshots: new PostgresSnapshotStore(storage.database) }, tenantId, taskId, { at })
    if (options.format === 'json') {
      const { state, ...place } = loaded
      console.log(JSON.stringify({ tenantId, taskId, ...place, state }, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value), 2))
      return
    }
    console.log(terminalSafe(tableLines(tenantId, taskId, loaded).join('\n')))
  } finally {
    await storage.close()
  }
}
