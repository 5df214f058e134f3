import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import type { StoredEvent } from '../historian'
import type { EventStore } from '../port'
import { canonicalJson } from '../integrity/chainHash'
import type { TenantKeyRing } from '../integrity/tenantKeyRing'
import { Checkpoint, type UnsignedCheckpoint } from './checkpoint'
import { checkpointAt, type StepBoundary } from './checkpointAt'
import { assertChainIntactUpTo } from './chainUpTo'
import { CheckpointInvalidError, CheckpointProblem, StepNotReachedError } from './checkpointErrors'

/**
 * The tenant's checkpoint-signing key: HKDF-SHA256 over the tenant's integrity key with info
 * `annalist:checkpoint-signing:v1:<tenantId>`, so it is tenant-scoped, derived from the master integrity key, and never
 * equal to (nor usable as) the hash-chain key of any tenant.
 */
export function checkpointKey(keyRing: TenantKeyRing, tenantId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', keyRing.keyFor(tenantId), Buffer.alloc(0), `annalist:checkpoint-signing:v1:${tenantId}`, 32))
}

/** HMAC-SHA256 (hex), under the tenant's checkpoint key, of the canonical JSON of every field but the signature. */
export function checkpointSignature(keyRing: TenantKeyRing, unsigned: UnsignedCheckpoint): string {
  return createHmac('sha256', checkpointKey(keyRing, unsigned.tenantId)).update(canonicalJson(unsigned)).digest('hex')
}

/** Signs a step boundary of a task as a version-1 checkpoint. */
export function signCheckpoint(keyRing: TenantKeyRing, task: { tenantId: string; taskId: string }, boundary: StepBoundary): Checkpoint {
  const unsigned: UnsignedCheckpoint = {
    version: 1,
    tenantId: task.tenantId,
    taskId: task.taskId,
    parentRunId: boundary.parentRunId,
    step: boundary.step,
    revision: boundary.revision,
    stateSha256: boundary.stateSha256,
  }
  return { ...unsigned, signature: checkpointSignature(keyRing, unsigned) }
}

/** Takes and signs the checkpoint before `step` of the task's latest run, from the task's stream as read. */
export function makeCheckpoint(keyRing: TenantKeyRing, task: { tenantId: string; taskId: string }, events: readonly StoredEvent[], step: Checkpoint['step']): Checkpoint {
  return signCheckpoint(keyRing, task, checkpointAt(events, step, task))
}

/**
 * Checks a checkpoint (as parsed JSON, so anything) for a run of `task` against the task's stream as read now, and
 * returns it typed with the boundary it pins. Refuses with CheckpointInvalidError: malformed, foreign (another tenant or
 * task), tampered (bad signature), not of the latest run, or stale (the stream's boundary moved).
 */
export function verifyCheckpoint(
  keyRing: TenantKeyRing,
  task: { tenantId: string; taskId: string },
  value: unknown,
  events: readonly StoredEvent[],
): { checkpoint: Checkpoint; boundary: StepBoundary } {
  const refuse = (problem: CheckpointProblem, detail: string) => new CheckpointInvalidError(problem, task.tenantId, task.taskId, detail)
  const parsed = Checkpoint.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw refuse(CheckpointProblem.Malformed, `not a version-1 checkpoint (${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unreadable'})`)
  }
  const checkpoint = parsed.data
  if (checkpoint.tenantId !== task.tenantId || checkpoint.taskId !== task.taskId) {
    throw refuse(CheckpointProblem.Foreign, `it was made for task ${checkpoint.tenantId}/${checkpoint.taskId}`)
  }
  const { signature, ...unsigned } = checkpoint
  const expected = Buffer.from(checkpointSignature(keyRing, unsigned), 'hex')
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
    throw refuse(CheckpointProblem.Tampered, "its signature does not match its fields under the tenant's checkpoint key (edited, or signed with another key)")
  }
  let boundary: StepBoundary
  try {
    boundary = checkpointAt(events, checkpoint.step, task)
  } catch (error) {
    if (!(error instanceof StepNotReachedError)) throw error
    if (error.runId !== undefined && error.runId !== checkpoint.parentRunId) {
      throw refuse(CheckpointProblem.NotLatestRun, `its parent run ${checkpoint.parentRunId} is not the task's latest run ${error.runId}`)
    }
    throw refuse(CheckpointProblem.Stale, error.message)
  }
  if (boundary.parentRunId !== checkpoint.parentRunId) {
    throw refuse(CheckpointProblem.NotLatestRun, `its parent run ${checkpoint.parentRunId} is not the task's latest run ${boundary.parentRunId}`)
  }
  if (boundary.revision !== checkpoint.revision || boundary.stateSha256 !== checkpoint.stateSha256) {
    throw refuse(
      CheckpointProblem.Stale,
      `the stream's boundary before ${checkpoint.step} is at revision ${boundary.revision} with state ${boundary.stateSha256.slice(0, 12)}, the checkpoint says revision ${checkpoint.revision} with state ${checkpoint.stateSha256.slice(0, 12)}`,
    )
  }
  return { checkpoint, boundary }
}

/**
 * Takes the checkpoint before `step` of the task's latest run and signs it only if the task stream's hash chain
 * verifies up to the boundary's revision; otherwise throws ChainBrokenError and signs nothing.
 */
export async function makeCheckpointOfIntactChain(
  deps: { store: EventStore; keyRing: TenantKeyRing },
  task: { tenantId: string; taskId: string },
  events: readonly StoredEvent[],
  step: Checkpoint['step'],
): Promise<Checkpoint> {
  const boundary = checkpointAt(events, step, task)
  await assertChainIntactUpTo(deps, task, boundary.revision)
  return signCheckpoint(deps.keyRing, task, boundary)
}

/**
 * verifyCheckpoint, after verifying the task stream's hash chain up to the revision the checkpoint pins (throws
 * ChainBrokenError on a break there). The chain goes first: an edited event would otherwise show only as a stale state.
 */
export async function verifyCheckpointOnIntactChain(
  deps: { store: EventStore; keyRing: TenantKeyRing },
  task: { tenantId: string; taskId: string },
  value: unknown,
  events: readonly StoredEvent[],
): Promise<{ checkpoint: Checkpoint; boundary: StepBoundary }> {
  const parsed = Checkpoint.safeParse(value)
  if (parsed.success && parsed.data.tenantId === task.tenantId && parsed.data.taskId === task.taskId) {
    await assertChainIntactUpTo(deps, task, parsed.data.revision)
  }
  return verifyCheckpoint(deps.keyRing, task, value, events)
}
