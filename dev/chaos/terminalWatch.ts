import type { Client } from '@temporalio/client'
import pLimit from 'p-limit'
import { pipelineWorkflowId, type TaskRef } from '../../workflows/api'

/**
 * The tasks whose pipeline is not known to be terminal: still running, or not answering (Temporal down for a moment
 * counts as not known). Describes at most `concurrency` workflows at once.
 */
export async function notTerminal(client: Client, tasks: readonly TaskRef[], concurrency = 8): Promise<TaskRef[]> {
  const limit = pLimit(concurrency)
  const statuses = await Promise.all(
    tasks.map((task) =>
      limit(() =>
        client.workflow
          .getHandle(pipelineWorkflowId(task.tenantId, task.taskId))
          .describe()
          .then((description) => description.status.name as string)
          .catch(() => 'UNKNOWN'),
      ),
    ),
  )
  return tasks.filter((_, index) => ['RUNNING', 'UNKNOWN', 'CONTINUED_AS_NEW'].includes(statuses[index]!))
}
