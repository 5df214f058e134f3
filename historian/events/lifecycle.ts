import { z } from 'zod'
import { EventMetadata } from './metadata'

/** The longest `reason` a lifecycle decision records: a short operator note, never content (docs/lifecycle.md). */
export const LIFECYCLE_REASON_MAX_LENGTH = 500
/** The longest `decidedBy` a lifecycle decision records. */
export const LIFECYCLE_DECIDER_MAX_LENGTH = 200
/** The activity ID of a lifecycle decision: recorded by an operator's command, not by an activity of a workflow run. */
export const LIFECYCLE_DECISION_ACTIVITY = 'lifecycle-decision'

const Revision = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
const RetentionNumber = z.number().int().min(1).max(2_147_483_647)

/**
 * What was decided about a task's stream: soft delete it (hide every event up to the revision decided against),
 * tombstone it (hide everything, for good), retain it (replace the retention rules: maxAgeSeconds, maxCount; at least
 * one) or truncate it (hide the events below `before`).
 */
export const LifecycleDecision = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('soft_delete') }).strict(),
  z.object({ kind: z.literal('tombstone') }).strict(),
  z
    .object({ kind: z.literal('retain'), maxAgeSeconds: RetentionNumber.optional(), maxCount: RetentionNumber.optional() })
    .strict()
    .refine((retain) => retain.maxAgeSeconds !== undefined || retain.maxCount !== undefined, 'retain needs maxAgeSeconds, maxCount or both'),
  z.object({ kind: z.literal('truncate'), before: Revision }).strict(),
])
export type LifecycleDecision = z.infer<typeof LifecycleDecision>
export type LifecycleDecisionKind = LifecycleDecision['kind']

/**
 * An operator decided the lifecycle of one task's stream (soft delete, tombstone, retention, truncation). Recorded in
 * the tenant's compliance stream (`compliance_<tenant>-lifecycle`) before the store applies it; the store's lifecycle
 * state is derived from these events, and only such an event explains an event missing from a task's stream.
 * `metadata.taskId` is the target task. Holds no content: `reason` is a short operator note (docs/lifecycle.md).
 */
export const StreamLifecycleDecided = z.object({
  type: z.literal('StreamLifecycleDecided'),
  data: z.object({
    /** Stable for a retried command: the event's ID too (historian/lifecycle/decisionId.ts). */
    decisionId: z.uuid(),
    /** The task stream decided about (`tenant_<tenant>-<task>`). */
    targetStream: z.string().min(1),
    decision: LifecycleDecision,
    decidedBy: z.string().trim().min(1).max(LIFECYCLE_DECIDER_MAX_LENGTH),
    reason: z.string().trim().min(1).max(LIFECYCLE_REASON_MAX_LENGTH),
    decidedAt: z.iso.datetime({ offset: true }),
    /** The target stream's last revision when it was decided (null: the stream had no event). */
    streamRevision: Revision.nullable(),
  }),
  metadata: EventMetadata,
})
export type StreamLifecycleDecided = z.infer<typeof StreamLifecycleDecided>

/** Compliance events: decisions about the lifecycle of a tenant's streams. */
export const ComplianceEvent = z.discriminatedUnion('type', [StreamLifecycleDecided])
export type ComplianceEvent = z.infer<typeof ComplianceEvent>
