import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client'
import { promptTemplateFor } from '../../activities/models/prompts'
import { MODEL_ROLES } from '../../activities/models/modelClient'
import { type Checkpoint } from '../../historian/checkpoints/checkpoint'
import { ChainBrokenError } from '../../historian/checkpoints/chainUpTo'
import { makeCheckpointOfIntactChain, verifyCheckpointOnIntactChain } from '../../historian/checkpoints/signCheckpoint'
import { RunOverrides, type ReplayableStep } from '../../historian/events'
import type { Historian } from '../../historian/historian'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import { foldTask } from '../../historian/taskState'
import { AGENT_PIPELINE_TASK_QUEUE, pipelineWorkflowId, type AgentPipelineInput } from '../../workflows/api'
import type { agentPipeline } from '../../workflows'
import { pipelineSearchAttributes } from './pipelineClient'

/** A new run of a task from a checkpoint of its latest run: a replay (`replay`) or a redrive of a dead letter (`redrive`). */
export interface LinkedRunRequest {
  tenantId: string
  taskId: string
  fromStep: ReplayableStep
  reason: 'replay' | 'redrive'
  requestedBy: string
  note?: string
  overrides?: RunOverrides
  checkpoint?: Checkpoint
}

/** Thrown when a linked run cannot start: the task has no run, its workflow is still running, or the request is invalid. Nothing was started. */
export class LinkedRunRefusedError extends Error {
  constructor(
    readonly tenantId: string,
    readonly taskId: string,
    readonly reason: string,
  ) {
    super(`cannot start a new run of ${tenantId}/${taskId}: ${reason}`)
    this.name = 'LinkedRunRefusedError'
  }
}

/** Checks overrides before anything starts: known roles, non-empty model names, prompt versions the worker's templates have. */
export function validateOverrides(overrides: RunOverrides | undefined): RunOverrides {
  const parsed = RunOverrides.parse(overrides ?? {})
  for (const role of MODEL_ROLES) promptTemplateFor(role, parsed.promptVersions[role])
  return parsed
}

async function isRunning(client: Client, workflowId: string): Promise<boolean> {
  try {
    const description = await client.workflow.getHandle(workflowId).describe()
    return description.status.name === 'RUNNING'
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false
    throw error
  }
}

/**
 * Starts a linked run of a task: reads its stream, refuses when it has no run or its workflow is still running, verifies
 * the task stream's hash chain up to the checkpoint's revision (refusing on a break: nothing starts from a forged
 * stream), makes the signed checkpoint of the latest run before `fromStep` (or verifies the one given), and starts the SAME workflow ID
 * again (ALLOW_DUPLICATE) with `run` set, so the new execution's beginRun records TaskRunStarted linked by parentRunId.
 */
export async function startLinkedRun(
  deps: { client: Client; historian: Historian; keyRing: TenantKeyRing; taskQueue?: string },
  request: LinkedRunRequest,
): Promise<{ workflowId: string; runId: string; parentRunId: string; checkpoint: Checkpoint }> {
  const tenantId = assertTenantId(request.tenantId)
  const taskId = assertTaskId(request.taskId)
  const task = { tenantId, taskId }
  const refuse = (reason: string) => new LinkedRunRefusedError(tenantId, taskId, reason)
  const overrides = validateOverrides(request.overrides)
  if (request.requestedBy.trim() === '') throw refuse('requestedBy must name who asked for the run')

  const workflowId = pipelineWorkflowId(tenantId, taskId)
  if (await isRunning(deps.client, workflowId)) throw refuse(`its workflow ${workflowId} is still running; wait for it to finish (or cancel it) first`)
  const stream = await deps.historian.readTask(tenantId, taskId)
  const state = foldTask(stream.events.map((stored) => stored.event))
  if (stream.events.length === 0 || state.runId === undefined) throw refuse('the task has no run (no events in its stream)')
  if (state.iterations > 0) throw refuse('it ran as a long agent loop; replaying loops is not supported yet')

  // Nothing starts from a stream whose hash chain breaks before the checkpoint's revision (ChainBrokenError).
  const trust = { store: deps.historian.store, keyRing: deps.keyRing }
  let checkpoint: Checkpoint
  try {
    checkpoint = request.checkpoint
      ? (await verifyCheckpointOnIntactChain(trust, task, request.checkpoint, stream.events)).checkpoint
      : await makeCheckpointOfIntactChain(trust, task, stream.events, request.fromStep)
  } catch (error) {
    if (error instanceof ChainBrokenError) throw refuse(error.message)
    throw error
  }
  if (checkpoint.step !== request.fromStep) throw refuse(`the checkpoint is before step ${checkpoint.step}, but the run was asked to start from ${request.fromStep}`)
  const input: AgentPipelineInput = {
    tenantId,
    taskId,
    input: '',
    requestedBy: request.requestedBy,
    run: {
      reason: request.reason,
      fromStep: request.fromStep,
      requestedBy: request.requestedBy,
      ...(request.note === undefined ? {} : { note: request.note }),
      overrides,
      checkpoint,
    },
  }
  try {
    const handle = await deps.client.workflow.start<typeof agentPipeline>('agentPipeline', {
      taskQueue: deps.taskQueue ?? AGENT_PIPELINE_TASK_QUEUE,
      workflowId,
      args: [input],
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      typedSearchAttributes: pipelineSearchAttributes(tenantId, taskId),
    })
    return { workflowId, runId: handle.firstExecutionRunId, parentRunId: checkpoint.parentRunId, checkpoint }
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) throw refuse(`its workflow ${workflowId} is still running; wait for it to finish (or cancel it) first`)
    throw error
  }
}
