import { z } from 'zod'
import { TaskId, TenantId } from './ids'

/** Data classification label carried by every event, so exports and retention can treat sensitive payloads apart. */
export const Classification = z.enum(['public', 'internal', 'confidential', 'restricted'])
export type Classification = z.infer<typeof Classification>

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
})
export type EventMetadata = z.infer<typeof EventMetadata>
