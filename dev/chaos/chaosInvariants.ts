import type pg from 'pg'
import type { FaultPlan } from '../faults/faultPlan'
import type { Historian, StoredEvent } from '../../historian/historian'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { ReconcileFindingKind, type ReconcileFinding, type ReconcileReport } from '../../historian/reconcile/reconcileFinding'
import { defaultProjections } from '../../projections/defaultProjections'
import { rebuildAndCompare } from '../../projections/rebuild'
import type { TaskRef } from '../../workflows/api'
import type { LedgerCall } from '../../cli/runtime/modelLedger'
import { verifyRun, type RunVerification } from '../../cli/runtime/verifyRun'
import { modelFaultsHit, toolFaultsHit } from './faultTally'

/** The promises a fault campaign checks. Counts must be 0 and booleans true. */
export interface ChaosInvariants {
  /** Workflows still running (or unknown to Temporal) when the campaign's deadline passed. */
  readonly workflowsNotTerminal: number
  /** Activities Temporal saw complete whose outcome events are not in the stream, plus streams missing altogether (reconcile). */
  readonly lostEvents: number
  /** Surplus events: an event ID stored twice, an activity outcome or failed attempt recorded twice (reconcile). */
  readonly duplicateEvents: number
  /** Outbox rows beyond one per side-effecting tool call. */
  readonly duplicateSideEffects: number
  /** Model calls started after the same activity's outcome was recorded (model ledger vs events). */
  readonly modelCallsRepeated: number
  /** The incrementally built read models equal a rebuild from position 0. */
  readonly readModelsMatchRebuild: boolean
  /** Every task's hash chain verifies with its tenant's key. */
  readonly chainsIntact: boolean
}

/** True when every invariant holds. */
export function invariantsHold(invariants: ChaosInvariants): boolean {
  return (
    invariants.workflowsNotTerminal === 0 &&
    invariants.lostEvents === 0 &&
    invariants.duplicateEvents === 0 &&
    invariants.duplicateSideEffects === 0 &&
    invariants.modelCallsRepeated === 0 &&
    invariants.readModelsMatchRebuild &&
    invariants.chainsIntact
  )
}

/** The invariants and the evidence behind them. */
export interface ChaosCheck {
  readonly invariants: ChaosInvariants
  readonly verification: RunVerification
  readonly reconcile: ReconcileReport
  /** Reconcile findings that are neither lost nor duplicate events (events without activity, workflow missing). */
  readonly otherFindings: readonly ReconcileFinding[]
  readonly rebuildDifferences: readonly string[]
  /** Model calls and tool calls the fault plan hit. */
  readonly planFaults: { readonly model: number; readonly tool: number }
  readonly tasksCompleted: number
  readonly tasksFailed: number
}

const LOST: ReadonlySet<string> = new Set([ReconcileFindingKind.activityWithoutEvents, ReconcileFindingKind.streamMissing])

/**
 * Checks a finished campaign: the event log, outbox and model ledger (verifyRun), Temporal's histories against the
 * event store (`reconcile`), the read models against a rebuild, and tallies the plan's faults from the ledger and events.
 * Run it once the workers and the projector have stopped.
 */
export async function checkChaosInvariants(deps: {
  readonly historian: Historian
  readonly pool: pg.Pool
  readonly keyRing: TenantKeyRing
  readonly tasks: readonly TaskRef[]
  readonly ledger: readonly LedgerCall[]
  readonly faultPlan: FaultPlan
  readonly workflowsNotTerminal: number
  readonly reconcile: (tasks: readonly TaskRef[]) => Promise<ReconcileReport>
}): Promise<ChaosCheck> {
  const verification = await verifyRun({ historian: deps.historian, pool: deps.pool, tasks: deps.tasks, ledger: deps.ledger, keyRing: deps.keyRing })
  const reconcile = await deps.reconcile(deps.tasks)
  const comparison = await rebuildAndCompare(deps.historian.store, deps.pool, defaultProjections())
  const events: StoredEvent[] = []
  for (const task of deps.tasks) events.push(...(await deps.historian.readTask(task.tenantId, task.taskId)).events)
  const lostEvents = reconcile.findings.filter((finding) => LOST.has(finding.kind)).length
  const duplicateEvents = reconcile.findings
    .filter((finding) => finding.kind === ReconcileFindingKind.duplicateEvents)
    .reduce((sum, finding) => sum + Math.max(1, finding.eventIds?.length ?? 0), 0)
  return {
    invariants: {
      workflowsNotTerminal: deps.workflowsNotTerminal,
      lostEvents,
      duplicateEvents,
      duplicateSideEffects: verification.duplicateSideEffects,
      modelCallsRepeated: verification.modelCallsRepeatedAfterCrash,
      readModelsMatchRebuild: comparison.matches,
      chainsIntact: verification.chainsIntact,
    },
    verification,
    reconcile,
    otherFindings: reconcile.findings.filter((finding) => !LOST.has(finding.kind) && finding.kind !== ReconcileFindingKind.duplicateEvents),
    rebuildDifferences: comparison.differences,
    planFaults: { model: modelFaultsHit(deps.faultPlan, deps.ledger), tool: toolFaultsHit(deps.faultPlan, events) },
    tasksCompleted: events.filter((stored) => stored.event.type === 'AgentTaskCompleted').length,
    tasksFailed: events.filter((stored) => stored.event.type === 'AgentTaskFailed').length,
  }
}
