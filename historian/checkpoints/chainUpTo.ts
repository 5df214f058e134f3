import type { EventStore } from '../port'
import { type ChainBreak, ChainBreakKind, verifyChain } from '../integrity/verifyChain'
import type { TenantKeyRing } from '../integrity/tenantKeyRing'
import { taskStreamName } from '../streams'

/**
 * Thrown when a task stream's hash chain does not verify up to the revision a checkpoint signs or trusts: nothing is
 * signed, replayed or redriven from it. `chainBreak` is the first break verifyChain reports at or before that revision.
 */
export class ChainBrokenError extends Error {
  readonly code = 'CHAIN_BROKEN'

  constructor(
    readonly tenantId: string,
    readonly taskId: string,
    readonly upToRevision: number,
    readonly chainBreak: ChainBreak,
  ) {
    super(
      `the hash chain of ${chainBreak.streamName} breaks at revision ${chainBreak.revision} (${chainBreak.kind}, event ${chainBreak.eventType} ${chainBreak.eventId}): ${chainBreak.message}; nothing up to revision ${upToRevision} can be trusted`,
    )
    this.name = 'ChainBrokenError'
  }
}

/** The lowest revision a break concerns: a gap concerns the missing revision, not the one found after it. */
function earliestRevision(chainBreak: ChainBreak): bigint {
  const revision = BigInt(chainBreak.revision)
  if (chainBreak.kind === ChainBreakKind.RevisionGap && chainBreak.expected !== null) {
    const expected = BigInt(chainBreak.expected)
    return expected < revision ? expected : revision
  }
  return revision
}

/**
 * Verifies the task stream's hash chain (verifyChain with the tenant's key) and throws ChainBrokenError if it breaks at
 * or before `revision`. A break after `revision` is not this checkpoint's concern: `verify` reports it.
 */
export async function assertChainIntactUpTo(
  deps: { store: EventStore; keyRing: TenantKeyRing },
  task: { tenantId: string; taskId: string },
  revision: number,
): Promise<void> {
  const streamName = taskStreamName(task.tenantId, task.taskId)
  const verification = await verifyChain({ store: deps.store, keyRing: deps.keyRing, tenantId: task.tenantId, taskId: task.taskId })
  const broken = verification.breaks.find((chainBreak) => chainBreak.streamName === streamName && earliestRevision(chainBreak) <= BigInt(revision))
  if (broken) throw new ChainBrokenError(task.tenantId, task.taskId, revision, broken)
}
