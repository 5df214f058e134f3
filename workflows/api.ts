import type { Checkpoint } from '../historian/checkpoints/checkpoint'
import type { PlannedToolCall } from '../historian/events/model'
import type { ReplayableStep, RunOverrides } from '../historian/events/run'
import type { PipelineStepName } from '../historian/events/task'

/** Task queue the agent pipeline workers poll. */
export const AGENT_PIPELINE_TASK_QUEUE = 'annalist-agent-pipeline'

/** Search attributes Annalist sets on every pipeline. Only identifiers: search attributes are stored in plaintext. */
export const SEARCH_ATTRIBUTES = { tenantId: 'TenantId', taskId: 'TaskId' } as const

/**
 * Input of the agentPipeline workflow. The task text is in Temporal's history twice per pipeline run: in this input
 * (the run's start event) and in the input of the `receive` activity, which records it in AgentTaskReceived. A loop
 * continued as new carries it again in each run's input; a linked run (replay, redrive) carries none and reads it from
 * the stream. Every other activity reads it from the task's stream.
 */
export interface AgentPipelineInput {
  readonly tenantId: string
  readonly taskId: string
  readonly input: string
  readonly requestedBy: string
  readonly tuning?: PipelineTuning
  /** Long agent loop mode (docs/long-loops.md): the planner iterates, each iteration's tool calls run, until done or the limit. */
  readonly loop?: LoopOptions
  /** Set only by continue-as-new: where the loop of this pipeline run stands; the run skips receive and route. */
  readonly loopState?: LoopState
  /** A replay or redrive (docs/replay.md): a new run of the task from a signed checkpoint of its latest run; skips receive. */
  readonly run?: LinkedRunInput
}

export type { ReplayableStep }

/** What a linked run (replay or redrive) starts from and runs differently; beginRun verifies the checkpoint before anything runs. */
export interface LinkedRunInput {
  readonly reason: 'replay' | 'redrive'
  readonly fromStep: ReplayableStep
  readonly requestedBy: string
  readonly note?: string
  readonly overrides: RunOverrides
  readonly checkpoint: Checkpoint
}

/** How long an agent loop may run: planner iterations, and tool calls the planner may ask for per iteration. */
export interface LoopOptions {
  readonly maxIterations: number
  /** Default DEFAULT_TOOL_CALLS_PER_ITERATION; at most MAX_TOOL_CALLS_PER_ITERATION. */
  readonly toolCallsPerIteration?: number
}

/** Where a loop stands when it continues as new: what the next Temporal run of the same pipeline run goes on from. */
export interface LoopState {
  readonly iterationsDone: number
  readonly toolCallsDone: number
  readonly toolCallsFailed: number
  readonly route: string
}

/** Tool calls the loop planner is offered per iteration unless told otherwise, and the most it may be offered. */
export const DEFAULT_TOOL_CALLS_PER_ITERATION = 8
export const MAX_TOOL_CALLS_PER_ITERATION = 64
/** Planner iterations one loop may run at most (hundreds of tool calls; thousands of iterations is a mistake). */
export const MAX_LOOP_ITERATIONS = 10_000

/** Result of the agentPipeline workflow: identifiers and small figures, never large payloads. */
export interface AgentPipelineResult {
  readonly tenantId: string
  readonly taskId: string
  readonly status: 'completed' | 'failed' | 'cancelled'
  readonly route?: string
  readonly toolCalls: number
  readonly toolCallsFailed: number
  readonly failedStep?: string
  readonly errorCode?: string
  /** The step a cancelled run was in. */
  readonly cancelledStep?: string
  readonly terminalEventId: string
}

/** The agentPipeline workflow's signature, for continue-as-new and clients without importing the workflow module. */
export type AgentPipelineWorkflow = (input: AgentPipelineInput) => Promise<AgentPipelineResult>

/** Update: cancel the pipeline on someone's behalf (docs/cancellation.md). Temporal's own cancel carries no requester or reason. */
export const cancelUpdateName = 'cancel'

/** Who asks for a cancel, and why; both are recorded in AgentTaskCancelled. */
export interface CancelRequest {
  readonly requestedBy: string
  readonly reason: string
}

/** The longest requester and reason a cancel accepts: what AgentTaskCancelled can record. */
const MAX_CANCEL_REQUESTER = 200
const MAX_CANCEL_REASON = 1_000

/** Why a cancel request cannot be recorded, or undefined when it can: the one check of the Update's validator and its callers. */
export function cancelRequestProblem(request: CancelRequest): string | undefined {
  const requestedBy: unknown = request?.requestedBy
  const reason: unknown = request?.reason
  if (typeof requestedBy !== 'string' || requestedBy.trim() === '' || requestedBy.length > MAX_CANCEL_REQUESTER) {
    return `a cancel needs who asks for it: 1 to ${MAX_CANCEL_REQUESTER} characters`
  }
  if (typeof reason !== 'string' || reason.trim() === '' || reason.length > MAX_CANCEL_REASON) return `a cancel needs a reason: 1 to ${MAX_CANCEL_REASON} characters`
  return undefined
}

/** How the pipeline ended after a cancel request: cancelled, or already completed or failed when the request came too late. */
export interface CancelOutcome {
  readonly status: AgentPipelineResult['status']
  readonly terminalEventId: string
  /** Who the recorded cancel names: the first request's requester (null: the cancel came from outside Annalist). */
  readonly cancelledBy?: string | null
}

/** Query: which step the pipeline is on. */
export const currentStepQueryName = 'currentStepQuery'

/** A pipeline step; the steps in order are PIPELINE_STEPS in historian/events/catalogue.ts. */
export type PipelineStep = PipelineStepName

/** The workflow ID of a tenant's task: derived from business keys so starting the same task twice yields one pipeline. */
export function pipelineWorkflowId(tenantId: string, taskId: string): string {
  return `agent-pipeline:${tenantId}:${taskId}`
}

/** Maximum tool calls the workflow runs at once. */
export const DEFAULT_TOOL_CONCURRENCY = 4

export type { PlannedToolCall }

/** Timing knobs a caller may tune per pipeline (the demo shortens them so recovery is quick to watch). */
export interface PipelineTuning {
  /** How long a silent model or tool activity may go before Temporal presumes its worker dead and retries it elsewhere. */
  readonly heartbeatTimeoutMs?: number
  /** How long one attempt of a tool call or compensation may take (default 2 minutes). */
  readonly toolTimeoutMs?: number
  /** First retry delay; later ones back off exponentially. */
  readonly retryInitialIntervalMs?: number
  /** Tool calls run at once. */
  readonly toolConcurrency?: number
  /** Agent loops continue as new once the run's history has this many events (besides when Temporal suggests it); for tests. */
  readonly continueAsNewAtHistoryLength?: number
}

/** Identifies a task for an activity; activities read everything else from the task's stream. */
export interface TaskRef {
  readonly tenantId: string
  readonly taskId: string
}

/**
 * Calls a model step makes to the model at most: the attempts that reached the model and failed, as recorded in the
 * task's stream, plus the last one. Attempts cut short by a worker crash, a Temporal restart or a store outage are
 * infrastructure, not the model's failures, and do not count (activities/runModelStep.ts).
 */
export const MODEL_CALL_ATTEMPTS = 4

/** Temporal attempts of a model step: a safety net above MODEL_CALL_ATTEMPTS for attempts lost to infrastructure. */
export const MODEL_ACTIVITY_ATTEMPTS = 12
