import { matchFault, type FaultPlan } from '../faults/faultPlan'
import type { StoredEvent } from '../../historian/historian'
import type { LedgerCall } from '../../cli/runtime/modelLedger'
import { MODEL_ROLES } from '../../historian/events/catalogue'

const MODEL_ROLE_TARGETS: ReadonlySet<string> = new Set(MODEL_ROLES)

/** Model calls in `ledger` that `plan` hit: the same seeded decision the worker made, taken again from the logged call. */
export function modelFaultsHit(plan: FaultPlan, ledger: readonly LedgerCall[]): number {
  return ledger.filter((call) => MODEL_ROLE_TARGETS.has(call.role) && matchFault(plan, { target: call.role, tenantId: call.tenantId, taskId: call.taskId, attempt: call.attempt }))
    .length
}

/** ToolCallFailed events caused by `plan` (its rule for the tool matched that attempt). */
export function toolFaultsHit(plan: FaultPlan, events: readonly StoredEvent[]): number {
  return events.filter((stored) => {
    if (stored.event.type !== 'ToolCallFailed') return false
    const { tenantId, taskId, attempt } = stored.event.metadata
    return matchFault(plan, { target: `tool:${stored.event.data.toolName}`, tenantId, taskId, attempt }) !== undefined
  }).length
}
