/**
 * Plain facts the reconciliation compares: what Temporal's histories say each activity did, and what the task's stream
 * holds. Extracted once (cli/runtime/temporalHistories.ts, eventFacts.ts) so the comparison is pure and testable alone.
 */

/** How an activity's scheduling ended in a run's history, as far as the history goes. */
export const ActivityState = {
  scheduled: 'scheduled',
  completed: 'completed',
  failed: 'failed',
  timedOut: 'timed_out',
  canceled: 'canceled',
} as const
export type ActivityState = (typeof ActivityState)[keyof typeof ActivityState]

/** One activity scheduled in one workflow run. */
export interface ActivityFact {
  readonly activityId: string
  readonly activityType: string
  readonly state: ActivityState
  /** The attempt of its last recorded start (Temporal writes ActivityTaskStarted when that attempt ends), if any. */
  readonly attempt?: number
}

/** One run of a task's workflow and the activities its history scheduled. */
export interface WorkflowRunFacts {
  readonly workflowId: string
  readonly runId: string
  /** Temporal's status name, e.g. COMPLETED or RUNNING. */
  readonly status: string
  readonly startTime?: Date
  readonly activities: readonly ActivityFact[]
}

/** One stored event of the task's stream, reduced to what reconciliation needs. Metadata fields are absent when the event lacks them. */
export interface EventFact {
  readonly eventId: string
  readonly type: string
  readonly revision: bigint
  readonly workflowId?: string
  readonly runId?: string
  readonly activityId?: string
  readonly attempt?: number
  /** True for the record of one failed attempt that Temporal retried (a model failure with `willRetry: true`); false for outcomes. */
  readonly attemptFailure: boolean
  /** True for such a record of the step's repair call, which an attempt may record besides its own failed call. */
  readonly repairFailure?: boolean
}

/** Everything known about one task on both sides. */
export interface TaskFacts {
  readonly tenantId: string
  readonly taskId: string
  readonly runs: readonly WorkflowRunFacts[]
  readonly events: readonly EventFact[]
}
