import { z } from 'zod'
import { REPLAYABLE_STEPS } from './catalogue'
import { EventMetadata } from './metadata'
import { PipelineStepName } from './task'

/** The steps a new run can start from: everything after `receive` (the task's input is always reused). */
export const ReplayableStep = z.enum(REPLAYABLE_STEPS)
export type ReplayableStep = z.infer<typeof ReplayableStep>

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters')

/** Model roles a run may override. */
const RoleOverrides = z
  .object({
    routing: z.string().min(1).optional(),
    planning: z.string().min(1).optional(),
    synthesis: z.string().min(1).optional(),
  })
  .strict()

/**
 * What a replay or redrive runs differently from its parent: a model name per role (resolved by the worker's model
 * client) and a prompt-template version per role. Empty means "as configured".
 */
export const RunOverrides = z.object({ models: RoleOverrides.default({}), promptVersions: RoleOverrides.default({}) }).strict()
export type RunOverrides = z.infer<typeof RunOverrides>

/**
 * The signed checkpoint a run started from, as recorded: the parent run, the step boundary, the stream revision of
 * the last reused event, the SHA-256 of the task state at that boundary, and the tenant-keyed HMAC-SHA256 over all of it
 * (docs/replay.md). The signature is recorded so an auditor can check which checkpoint a run trusted.
 */
export const CheckpointRef = z.object({
  parentRunId: z.string().min(1),
  step: ReplayableStep,
  revision: z.number().int().nonnegative(),
  stateSha256: Sha256Hex,
  signature: Sha256Hex,
})
export type CheckpointRef = z.infer<typeof CheckpointRef>

/**
 * A new run of a task began from a checkpoint of its latest run: a replay (to test a fix against historical inputs) or
 * a redrive of a dead-lettered task. Steps before `fromStep` reuse the parent run's recorded outputs; nothing before
 * it is called again. `runId` in the metadata is the new run's; `parentRunId` links the lineage.
 */
export const TaskRunStarted = z.object({
  type: z.literal('TaskRunStarted'),
  data: z.object({
    reason: z.enum(['replay', 'redrive']),
    parentRunId: z.string().min(1),
    fromStep: ReplayableStep,
    requestedBy: z.string().min(1),
    note: z.string().max(2_000).optional(),
    checkpoint: CheckpointRef,
    overrides: RunOverrides,
  }),
  metadata: EventMetadata,
})
export type TaskRunStarted = z.infer<typeof TaskRunStarted>

/**
 * A long agent loop handed over to a fresh Temporal run (continue-as-new) to stay below the history limits. The task
 * stream, its hash chain and its pipeline run go on; only the Temporal run ID changes (`nextRunId` is unknown here, so
 * the first event of the next run points back with its causation ID).
 */
export const TaskRunContinued = z.object({
  type: z.literal('TaskRunContinued'),
  data: z.object({
    iterationsDone: z.number().int().nonnegative(),
    toolCallsDone: z.number().int().nonnegative(),
    historyLength: z.number().int().nonnegative(),
    historySizeBytes: z.number().int().nonnegative(),
    reason: z.enum(['continue_as_new_suggested', 'history_threshold']),
  }),
  metadata: EventMetadata,
})
export type TaskRunContinued = z.infer<typeof TaskRunContinued>

/** One failed attempt behind a dead letter. */
export const FailedAttempt = z.object({
  eventId: z.string().min(1).nullable(),
  attempt: z.number().int().positive(),
  errorCode: z.string().min(1),
  message: z.string(),
  occurredAt: z.iso.datetime({ offset: true }).nullable(),
})
export type FailedAttempt = z.infer<typeof FailedAttempt>

/**
 * A task failed because a step exhausted its retries (as opposed to a failure no retry could fix): it is parked as a
 * dead letter with its full error context until someone redrives it (TaskRunStarted, reason `redrive`).
 */
export const TaskDeadLettered = z.object({
  type: z.literal('TaskDeadLettered'),
  data: z.object({
    failedStep: PipelineStepName,
    errorCode: z.string().min(1),
    message: z.string(),
    attempts: z.number().int().nonnegative(),
    /** Temporal's retry state when the workflow saw the failure, e.g. RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED. */
    retryState: z.string().min(1),
    /** Every recorded failed attempt of the failed step in this run, oldest first. */
    failures: z.array(FailedAttempt).max(100),
    /**
     * The pipeline run that failed: the Temporal run ID that began it (TaskState.runId), which a redrive names as its
     * parentRunId. Differs from `metadata.runId` after continue-as-new. Absent: `metadata.runId`.
     */
    runId: z.string().min(1).optional(),
  }),
  metadata: EventMetadata,
})
export type TaskDeadLettered = z.infer<typeof TaskDeadLettered>

/** Run lineage and lifecycle events. */
/** The activity ID of a redrive request: recorded by an operator's command, not by an activity of a workflow run. */
export const REDRIVE_REQUEST_ACTIVITY = 'redrive-request'

/**
 * An operator asked to redrive a dead-lettered run (`annalist redrive`). Appended to the task's stream with an explicit
 * expected revision before the new run is started, so of two redrives racing each other exactly one is recorded, and
 * any later one sees it. Its metadata names the dead-lettered run and the activity REDRIVE_REQUEST_ACTIVITY.
 */
export const RedriveRequested = z.object({
  type: z.literal('RedriveRequested'),
  data: z.object({
    /** The dead-lettered run the new run redrives. */
    deadLetteredRunId: z.string().min(1),
    requestedBy: z.string().min(1),
    note: z.string().max(2_000).optional(),
    /** True when an operator repeats a redrive whose run never started (`redrive --resume`). */
    resumed: z.boolean(),
  }),
  metadata: EventMetadata,
})
export type RedriveRequested = z.infer<typeof RedriveRequested>

/** Event types an operator's command records (not an activity): reconcile has no Temporal activity to match them with. */
export const OPERATOR_RECORDED_EVENT_TYPES: ReadonlySet<string> = new Set(['RedriveRequested'])

export const RunEvent = z.discriminatedUnion('type', [TaskRunStarted, TaskRunContinued, TaskDeadLettered, RedriveRequested])
export type RunEvent = z.infer<typeof RunEvent>
