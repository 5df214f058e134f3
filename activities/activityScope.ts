import { activityInfo, cancellationSignal, heartbeat } from '@temporalio/activity'

/** Who is running: the Temporal identity of the current activity attempt, plus the task it works for. */
export interface ActivityScope {
  readonly tenantId: string
  readonly taskId: string
  readonly workflowId: string
  readonly runId: string
  readonly activityId: string
  readonly attempt: number
  /** True when Temporal will schedule another attempt if this one fails with a retryable error. */
  readonly hasAttemptsLeft: boolean
  readonly abortSignal: AbortSignal
  readonly heartbeatIntervalMs: number
  heartbeat(): void
}

/** Reads the current activity's identity from Temporal's activity context. */
export function currentActivityScope(task: { tenantId: string; taskId: string }): ActivityScope {
  const info = activityInfo()
  if (!info.workflowExecution) throw new Error(`activity ${info.activityType} must run inside a workflow: event IDs derive from the workflow execution`)
  const maximumAttempts = info.retryPolicy?.maximumAttempts ?? 0
  const heartbeatTimeoutMs = info.heartbeatTimeoutMs ?? 0
  return {
    tenantId: task.tenantId,
    taskId: task.taskId,
    workflowId: info.workflowExecution.workflowId,
    runId: info.workflowExecution.runId,
    activityId: info.activityId,
    attempt: info.attempt,
    hasAttemptsLeft: maximumAttempts <= 0 || info.attempt < maximumAttempts,
    abortSignal: cancellationSignal(),
    heartbeatIntervalMs: heartbeatTimeoutMs > 0 ? Math.max(100, Math.floor(heartbeatTimeoutMs / 3)) : 1_000,
    heartbeat: () => heartbeat(),
  }
}

/** Runs `work` while heartbeating, so a worker that dies mid-call is noticed within the heartbeat timeout. */
export async function withHeartbeat<T>(scope: ActivityScope, work: () => Promise<T>): Promise<T> {
  scope.heartbeat()
  const timer = setInterval(() => scope.heartbeat(), scope.heartbeatIntervalMs)
  try {
    return await work()
  } finally {
    clearInterval(timer)
  }
}
