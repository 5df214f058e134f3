import { z } from 'zod'
import { TaskId, TenantId } from './ids'

/** Data classification label carried by every event, so exports and retention can treat sensitive payloads apart. */
export const Classification = z.enum(['public', 'internal', 'confidential', 'restricted'])
export type Classification = z.infer<typeof Classification>

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters')

/**
 * The event's link in its stream's hash chain (docs/tamper-evidence.md): `prevHash` is the previous event's `hash`, or the
 * stream's tenant-keyed anchor for revision 0; `hash` is the tenant-keyed HMAC over `prevHash` and the event's content.
 * Set by the Historian on append; anything a caller puts here is replaced.
 */
export const EventIntegrity = z.object({ prevHash: Sha256Hex, hash: Sha256Hex })
export type EventIntegrity = z.infer<typeof EventIntegrity>

/** Metadata every Annalist event carries: who wrote it, for which task, and where it sits causally. */
export const EventMetadata = z.object({
  schemaVersion: z.number().int().positive(),
  tenantId: TenantId,
  taskId: TaskId,
  workflowId: z.string().min(1),
  runId: z.string().min(1),
  activityId: z.string().min(1),
  attempt: z.number().int().positive(),
  correlationId: z.string().min(1),
  causationId: z.string().min(1).nullable(),
  occurredAt: z.iso.datetime({ offset: true }),
  classification: Classification.default('internal'),
  integrity: EventIntegrity.optional(),
})
export type EventMetadata = z.infer<typeof EventMetadata>
