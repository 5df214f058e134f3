import { WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateStage, type Client } from '@temporalio/client'
import { OperationRefusedError, type CancelTask } from '../../api/apiDeps'
import { cancelUpdate } from '../../workflows/cancellation'
import { cancelRequestProblem, pipelineWorkflowId, type CancelOutcome, type CancelRequest, type TaskRef } from '../../workflows/api'

/** Thrown when a cancel cannot be requested: no running pipeline, or the pipeline refused the request. Nothing was cancelled. */
export class CancelRefusedError extends Error {
  constructor(task: TaskRef, why: string) {
    super(`cannot cancel ${task.tenantId}/${task.taskId}: ${why}`)
    this.name = 'CancelRefusedError'
  }
}

/** A cancel the pipeline accepted: `outcome()` waits until the run has recorded how it ended. */
export interface AcceptedCancel {
  readonly workflowId: string
  readonly runId: string
  outcome(): Promise<CancelOutcome>
}

/**
 * Asks the task's running pipeline to cancel on `request`'s behalf, through its cancel Update (docs/cancellation.md), and
 * returns once the Update reached the workflow. An invalid request, and a task with no running pipeline, are refused
 * with CancelRefusedError at once; a refusal by the workflow itself (a pipeline begun before recorded cancels has no
 * Update handler) surfaces the same way from `outcome()`.
 */
export async function requestCancel(client: Client, task: TaskRef, request: CancelRequest): Promise<AcceptedCancel> {
  const problem = cancelRequestProblem(request)
  if (problem !== undefined) throw new CancelRefusedError(task, problem)
  const workflowId = pipelineWorkflowId(task.tenantId, task.taskId)
  const workflow = client.workflow.getHandle(workflowId)
  const refusal = async (error: unknown): Promise<never> => {
    if (error instanceof WorkflowUpdateFailedError) throw new CancelRefusedError(task, error.cause?.message ?? error.message)
    if (error instanceof WorkflowNotFoundError) throw new CancelRefusedError(task, await whyNotRunning(client, workflowId))
    throw error
  }
  const update = await workflow.startUpdate(cancelUpdate, { args: [request], waitForStage: WorkflowUpdateStage.ACCEPTED }).catch(refusal)
  const runId = update.workflowRunId ?? (await workflow.describe()).runId
  return { workflowId, runId, outcome: () => update.result().catch(refusal) }
}

/** The API's cancel (CancelTask) over requestCancel: a refused cancel becomes OperationRefusedError (HTTP 409). */
export function apiCancelTask(client: Client): CancelTask {
  return async ({ tenantId, taskId, requestedBy, reason, wait }) => {
    try {
      const accepted = await requestCancel(client, { tenantId, taskId }, { requestedBy, reason })
      const run = { workflowId: accepted.workflowId, runId: accepted.runId }
      if (!wait) return { ...run, status: 'accepted' }
      const outcome = await accepted.outcome()
      return { ...run, status: outcome.status, terminalEventId: outcome.terminalEventId }
    } catch (error) {
      if (error instanceof CancelRefusedError) throw new OperationRefusedError(error.message)
      throw error
    }
  }
}

/** Why a pipeline cannot take a cancel: it never existed, or its latest run has ended (and how). */
async function whyNotRunning(client: Client, workflowId: string): Promise<string> {
  try {
    const description = await client.workflow.getHandle(workflowId).describe()
    return `its pipeline is not running (${description.status.name.toLowerCase()})`
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return 'no pipeline was ever started for it'
    throw error
  }
}
