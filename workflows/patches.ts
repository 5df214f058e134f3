/**
 * The patch IDs of workflow changes (docs/workflow-changes.md): `patched(id)` is false while replaying an execution begun
 * before the change, so old executions keep their commands, and true for everything else. Never rename or reuse one.
 */
export const WORKFLOW_PATCHES = {
  /** A failed run compensates the side effects it noted (saga). */
  compensateSideEffects: 'compensate-side-effects',
  /** Cancels are recorded (AgentTaskCancelled) with who and why, through the cancel Update, after compensation. */
  recordedCancel: 'recorded-cancel',
  /** A fan-out with a failed call stops scheduling and lets the calls in flight settle before the run goes on. */
  drainFanOut: 'drain-fan-out',
  /** Compensation undoes every side effect the stream records for the run, and records compensations that never answered. */
  compensateRecordedSideEffects: 'compensate-recorded-side-effects',
} as const
