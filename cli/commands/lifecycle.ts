import { LIFECYCLE_DECIDER_MAX_LENGTH, LIFECYCLE_REASON_MAX_LENGTH, type LifecycleDecision } from '../../historian/events'
import { listLifecycleDecisions, reconcileLifecycle, recordLifecycleDecision, type DecisionRequest, type LifecycleReport } from '../../historian/lifecycle/lifecycleService'
import { assertTaskId, assertTenantId, parseTaskStreamName } from '../../historian/streams'
import { defaultProjections } from '../../projections/defaultProjections'
import { sweepRetention } from '../../projections/lifecycleSweep'
import { InvalidQueryError, parseIsoInstant } from '../../projections/queryFilters'
import { loadConfig, requireIntegrityKeyRing } from '../runtime/config'
import { formatRows, type OutputColumn, type OutputFormat } from '../runtime/output'
import { startActivityIndicator } from '../runtime/progress'
import { authorizeCaller } from '../runtime/callerPermission'
import { openStorage } from '../runtime/storage'
import { parseWholeNumber } from './lag'

/** The lifecycle decisions `annalist lifecycle` records, by sub-command name. */
export const LifecycleCommandKind = { softDelete: 'soft-delete', tombstone: 'tombstone', retain: 'retain', truncate: 'truncate' } as const
export type LifecycleCommandKind = (typeof LifecycleCommandKind)[keyof typeof LifecycleCommandKind]

/** The options of a deciding `annalist lifecycle` sub-command, as commander parses them. */
export interface LifecycleDecideOptions {
  readonly tenant: string
  readonly task: string
  readonly by: string
  readonly reason: string
  readonly maxAge?: string
  readonly maxCount?: string
  readonly before?: string
}

const RETENTION_MAX = 2_147_483_647

/** Checks one bounded, printable operator text (`--by`, `--reason`); InvalidQueryError names the flag. */
function operatorText(value: string, flag: string, max: number): string {
  const trimmed = value.trim()
  if (trimmed.length < 1 || trimmed.length > max || /[\p{Cc}]/u.test(trimmed)) throw new InvalidQueryError(flag, `must be 1 to ${max} printable characters`)
  return trimmed
}

/** The decision a sub-command's options ask for, checked before anything is opened. */
export function decisionRequest(kind: LifecycleCommandKind, options: LifecycleDecideOptions): DecisionRequest {
  const tenantId = assertTenantId(options.tenant)
  const taskId = assertTaskId(options.task)
  const decidedBy = operatorText(options.by, '--by', LIFECYCLE_DECIDER_MAX_LENGTH)
  const reason = operatorText(options.reason, '--reason', LIFECYCLE_REASON_MAX_LENGTH)
  let decision: LifecycleDecision
  switch (kind) {
    case 'soft-delete':
      decision = { kind: 'soft_delete' }
      break
    case 'tombstone':
      decision = { kind: 'tombstone' }
      break
    case 'truncate':
      if (options.before === undefined) throw new InvalidQueryError('--before', 'required: the first revision to keep')
      decision = { kind: 'truncate', before: parseWholeNumber(options.before, '--before', 0, Number.MAX_SAFE_INTEGER) }
      break
    case 'retain': {
      if (options.maxAge === undefined && options.maxCount === undefined) throw new InvalidQueryError('--max-age', 'give --max-age SECONDS, --max-count N or both')
      decision = {
        kind: 'retain',
        ...(options.maxAge === undefined ? {} : { maxAgeSeconds: parseWholeNumber(options.maxAge, '--max-age', 1, RETENTION_MAX) }),
        ...(options.maxCount === undefined ? {} : { maxCount: parseWholeNumber(options.maxCount, '--max-count', 1, RETENTION_MAX) }),
      }
      break
    }
  }
  return { tenantId, taskId, decision, decidedBy, reason }
}

function describeDecision(decision: LifecycleDecision): string {
  switch (decision.kind) {
    case 'retain':
      return [
        'retain',
        decision.maxAgeSeconds === undefined ? undefined : `maxAge ${decision.maxAgeSeconds} s`,
        decision.maxCount === undefined ? undefined : `maxCount ${decision.maxCount}`,
      ]
        .filter(Boolean)
        .join(' ')
    case 'truncate':
      return `truncate before revision ${decision.before}`
    default:
      return decision.kind.replace('_', ' ')
  }
}

/**
 * `annalist lifecycle soft-delete|tombstone|retain|truncate --tenant T --task K --by NAME --reason TEXT`: records the
 * decision in the tenant's compliance stream, then applies it to the store (recordLifecycleDecision). The whole action
 * of a deciding command: a permission check (`lifecycle.decide`) wraps this one function.
 */
export async function lifecycleDecideCommand(kind: LifecycleCommandKind, options: LifecycleDecideOptions): Promise<void> {
  const request = decisionRequest(kind, options)
  const config = loadConfig()
  requireIntegrityKeyRing(config)
  const storage = await openStorage(config)
  try {
    await authorizeCaller(storage.database.pool, config.apiKey, 'lifecycle.decide', request.tenantId)
    const outcome = await recordLifecycleDecision(storage.historian, request)
    const { decision } = outcome
    const what = `${describeDecision(decision.decision)} of ${request.tenantId}/${request.taskId} (at revision ${decision.streamRevision ?? 'none'})`
    console.log(
      outcome.recorded
        ? `recorded decision ${decision.decisionId}: ${what} by ${decision.decidedBy}`
        : `already decided (decision ${decision.decisionId} by ${decision.decidedBy} at ${decision.decidedAt}): ${what}; nothing new recorded`,
    )
    if (outcome.applied.length > 0) console.log(`applied to the store: ${outcome.applied.join(', ')}`)
  } finally {
    await storage.close()
  }
}

interface DecisionRow {
  readonly position: bigint
  readonly decidedAt: string
  readonly task: string
  readonly decision: string
  readonly revision: number | null
  readonly decidedBy: string
  readonly reason: string
  readonly decisionId: string
}

const DECISION_COLUMNS: readonly OutputColumn<DecisionRow>[] = [
  { key: 'decidedAt', header: 'decided at' },
  { key: 'task', header: 'task' },
  { key: 'decision', header: 'decision' },
  { key: 'revision', header: 'at revision' },
  { key: 'decidedBy', header: 'by' },
  { key: 'reason', header: 'reason' },
  { key: 'decisionId', header: 'decision ID' },
]

/** `annalist lifecycle list --tenant T`: the tenant's lifecycle decisions, oldest first, from its compliance stream. */
export async function lifecycleListCommand(options: { readonly tenant: string; readonly format: OutputFormat }): Promise<void> {
  const tenantId = assertTenantId(options.tenant)
  const storage = await openStorage(loadConfig())
  try {
    const decisions = await listLifecycleDecisions(storage.historian, tenantId)
    const rows: DecisionRow[] = decisions.map(({ position, data }) => ({
      position,
      decidedAt: data.decidedAt,
      task: parseTaskStreamName(data.targetStream).taskId,
      decision: describeDecision(data.decision),
      revision: data.streamRevision,
      decidedBy: data.decidedBy,
      reason: data.reason,
      decisionId: data.decisionId,
    }))
    console.log(formatRows(rows, DECISION_COLUMNS, options.format, `no lifecycle decisions recorded for tenant ${tenantId}`))
  } finally {
    await storage.close()
  }
}

function printReport(report: LifecycleReport): boolean {
  const drifting = report.streams.filter((stream) => stream.drift !== undefined)
  for (const stream of report.healed) console.log(`${stream}: brought in line with its decisions`)
  for (const { stream, drift } of drifting) console.log(`${stream}: ${drift}`)
  console.log(
    `${report.streams.length} stream(s) compared, ${report.healed.length} healed, ${drifting.length} differing from the recorded decisions` +
      (report.listedStore ? '' : ' (this store cannot list its stream metadata: only streams named by decisions were compared)'),
  )
  return drifting.length === 0
}

/**
 * `annalist lifecycle sync` derives every stream's lifecycle from the recorded decisions and applies what the store
 * lacks (healing a crash between recording and applying); `annalist lifecycle check` only compares. Exit 2 when a
 * stream still differs, such as a stream_metadata row no decision explains.
 */
export async function lifecycleReconcileCommand(options: { readonly heal: boolean }): Promise<void> {
  const config = loadConfig()
  const storage = await openStorage(config)
  try {
    // Healing applies decisions of every tenant: a global operator's action. Checking only reads.
    if (options.heal) await authorizeCaller(storage.database.pool, config.apiKey, 'lifecycle.decide', null)
    const report = await reconcileLifecycle(storage.store, { heal: options.heal })
    if (!printReport(report)) process.exitCode = 2
  } finally {
    await storage.close()
  }
}

/** Parses `--at`: an ISO 8601 time with a zone; default now. */
export function sweepTime(at: string | undefined, now: () => Date = () => new Date()): Date {
  if (at === undefined) return now()
  return parseIsoInstant('--at', at, { requireTime: true })
}

/**
 * `annalist lifecycle sweep [--at ISO-8601]`: removes from the read models what retention (maxAge, maxCount) hides as
 * of that time (default now), stream by stream and projection by projection (sweepRetention), showing progress.
 */
export async function lifecycleSweepCommand(options: { readonly at?: string }): Promise<void> {
  const at = sweepTime(options.at)
  const config = loadConfig()
  const storage = await openStorage(config)
  // The sweep rewrites every tenant's read models, like a rebuild.
  await authorizeCaller(storage.database.pool, config.apiKey, 'projection.rebuild', null).catch(async (error: unknown) => {
    await storage.close()
    throw error
  })
  const indicator = startActivityIndicator({ label: `sweeping retention as of ${at.toISOString()}`, countLabel: 'projections swept' })
  try {
    const report = await sweepRetention(storage.store, storage.database.pool, defaultProjections(), at, (projection) => indicator.tick(projection))
    indicator.stop()
    const positions = Object.entries(report.positions).map(([name, position]) => `${name} at ${position}`)
    console.log(`swept ${report.streams.length} stream(s) with decided retention as of ${at.toISOString()}: ${positions.join(', ') || 'no projections'}`)
  } finally {
    indicator.stop()
    await storage.close()
  }
}
