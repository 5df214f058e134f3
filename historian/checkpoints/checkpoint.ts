import { z } from 'zod'
import { ReplayableStep, type CheckpointRef } from '../events'

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters')

/**
 * A signed checkpoint: the boundary before `step` in the task's latest run (`parentRunId`), pinned by the stream
 * revision of the event that brought the run there and the SHA-256 of the canonical JSON of the task state at that
 * moment, signed with HMAC-SHA256 under the tenant's checkpoint key (signCheckpoint). Written as JSON by `checkpoint`.
 */
export const Checkpoint = z
  .object({
    version: z.literal(1),
    tenantId: z.string().min(1),
    taskId: z.string().min(1),
    parentRunId: z.string().min(1),
    step: ReplayableStep,
    revision: z.number().int().nonnegative(),
    stateSha256: Sha256Hex,
    signature: Sha256Hex,
  })
  .strict()
export type Checkpoint = z.infer<typeof Checkpoint>

/** A checkpoint before it is signed. */
export type UnsignedCheckpoint = Omit<Checkpoint, 'signature'>

/** The part of a checkpoint recorded on TaskRunStarted. */
export function checkpointRef(checkpoint: Checkpoint): CheckpointRef {
  const { parentRunId, step, revision, stateSha256, signature } = checkpoint
  return { parentRunId, step, revision, stateSha256, signature }
}
