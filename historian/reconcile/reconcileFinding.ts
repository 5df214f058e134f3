/** The kinds of disagreement between Temporal's histories and the event store (docs/reconcile.md says what to do about each). */
export const ReconcileFindingKind = {
  /** An activity completed in Temporal but its outcome is not in the task's stream: a lost event. */
  activityWithoutEvents: 'activity_without_events',
  /** Events name a workflow run and activity that no history scheduled: forged, misfiled or from an unknown run. */
  eventsWithoutActivity: 'events_without_activity',
  /** One activity of one run recorded its outcome twice, or one event ID is stored more than once. */
  duplicateEvents: 'duplicate_events',
  /** The task has events but Temporal knows no run of its workflow. */
  workflowMissing: 'workflow_missing',
  /** Temporal completed activities of the task's workflow but its stream holds no events at all. */
  streamMissing: 'stream_missing',
} as const
export type ReconcileFindingKind = (typeof ReconcileFindingKind)[keyof typeof ReconcileFindingKind]

/** One disagreement found, with as much of its place as is known. */
export interface ReconcileFinding {
  readonly kind: ReconcileFindingKind
  readonly tenantId: string
  readonly taskId: string
  readonly workflowId?: string
  readonly runId?: string
  readonly activityId?: string
  readonly eventIds?: readonly string[]
  readonly detail: string
}

/** What a reconciliation checked and found. Empty `findings` means both sides agree. */
export interface ReconcileReport {
  readonly tasksChecked: number
  readonly workflowRunsChecked: number
  /** Activities scheduled in the histories checked. */
  readonly activitiesChecked: number
  readonly eventsChecked: number
  /** Tasks that have neither a workflow run nor an event (a mistyped task ID, say). */
  readonly tasksNotFound: readonly string[]
  readonly findings: readonly ReconcileFinding[]
}
