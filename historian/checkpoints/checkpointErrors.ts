import type { ReplayableStep } from '../events'

/** Why a checkpoint was refused. */
export const CheckpointProblem = {
  /** The file or value is not a version-1 checkpoint at all. */
  Malformed: 'malformed',
  /** The signature does not match the checkpoint's fields under its tenant's checkpoint key: a field was edited, or another key signed it. */
  Tampered: 'tampered',
  /** The checkpoint names another tenant or task than the one it is used for. */
  Foreign: 'foreign',
  /** The checkpoint's parent run is not the task's latest run: a newer run started since it was made. */
  NotLatestRun: 'not_latest_run',
  /** The stream no longer matches the checkpoint: its revision or state at the step boundary differs. */
  Stale: 'stale',
} as const
export type CheckpointProblem = (typeof CheckpointProblem)[keyof typeof CheckpointProblem]

/** Thrown when a checkpoint cannot be trusted for a run of a task: malformed, tampered, foreign, not of the latest run, or stale. */
export class CheckpointInvalidError extends Error {
  readonly code = 'CHECKPOINT_INVALID'

  constructor(
    readonly problem: CheckpointProblem,
    readonly tenantId: string,
    readonly taskId: string,
    detail: string,
  ) {
    super(`checkpoint refused for ${tenantId}/${taskId} (${problem}): ${detail}`)
    this.name = 'CheckpointInvalidError'
  }
}

/** Thrown when a checkpoint is asked for at a step the task's latest run never reached (or when the task has no run). */
export class StepNotReachedError extends Error {
  readonly code = 'STEP_NOT_REACHED'

  constructor(
    readonly tenantId: string,
    readonly taskId: string,
    readonly runId: string | undefined,
    readonly step: ReplayableStep,
    readonly failedStep: string | undefined,
  ) {
    super(
      runId === undefined
        ? `task ${tenantId}/${taskId} has no run to take a checkpoint of`
        : `run ${runId} of task ${tenantId}/${taskId} never reached step ${step}${failedStep ? `; it failed at ${failedStep}` : '; it has not got there yet'}`,
    )
    this.name = 'StepNotReachedError'
  }
}
