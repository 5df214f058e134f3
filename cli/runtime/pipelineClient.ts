import { defineSearchAttributeKey, SearchAttributeType, TypedSearchAttributes } from '@temporalio/common'
import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import { AGENT_PIPELINE_TASK_QUEUE, pipelineWorkflowId, SEARCH_ATTRIBUTES, type AgentPipelineInput } from '../../workflows/api'
import type { agentPipeline } from '../../workflows'
import { assertLoopOptions } from './loopOptions'

export const TenantIdSearchAttribute = defineSearchAttributeKey(SEARCH_ATTRIBUTES.tenantId, SearchAttributeType.KEYWORD)
export const TaskIdSearchAttribute = defineSearchAttributeKey(SEARCH_ATTRIBUTES.taskId, SearchAttributeType.KEYWORD)

/** The search attributes of a task's pipeline executions: identifiers only (search attributes are stored in plaintext). */
export function pipelineSearchAttributes(tenantId: string, taskId: string): TypedSearchAttributes {
  return new TypedSearchAttributes([
    { key: TenantIdSearchAttribute, value: tenantId },
    { key: TaskIdSearchAttribute, value: taskId },
  ])
}

/**
 * Starts the pipeline for a tenant's task, or returns the one already started for it: the workflow ID derives from
 * tenant and task, so starting the same task twice yields one pipeline. IDs (and loop options) are validated before anything is sent.
 */
export async function startPipeline(client: Client, input: AgentPipelineInput, taskQueue = AGENT_PIPELINE_TASK_QUEUE): Promise<WorkflowHandleWithFirstExecutionRunId<typeof agentPipeline>> {
  const tenantId = assertTenantId(input.tenantId)
  const taskId = assertTaskId(input.taskId)
  if (input.loop) assertLoopOptions(input.loop)
  return client.workflow.start<typeof agentPipeline>('agentPipeline', {
    taskQueue,
    workflowId: pipelineWorkflowId(tenantId, taskId),
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
    typedSearchAttributes: pipelineSearchAttributes(tenantId, taskId),
  })
}
