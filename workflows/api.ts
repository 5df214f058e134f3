import type { PlannedToolCall } from '../historian/events/model'

/** Task queue the agent pipeline workers poll. */
export const AGENT_PIPELINE_TASK_QUEUE = 'annalist-agent-pipeline'

/** Search attributes Annalist sets on every pipeline. Only identifiers: search attributes are stored in plaintext. */
export const SEARCH_ATTRIBUTES = { tenantId: 'TenantId', taskId: 'TaskId' } as const

/** Input of the agentPipeline workflow. The task text itself travels once, into the AgentTaskReceived event. */
export interface AgentPipelineInput {
  readonly tenantId: string
  readonly taskId: string
  readonly input: string
  readonly requestedBy: string
  readonly tuning?: PipelineTuning
}

/** Result of the agentPipeline workflow: identifiers and small figures, never large payloads. */
export interface AgentPipelineResult {
  readonly tenantId: string
  readonly taskId: string
  readonly status: 'completed' | 'failed'
  readonly route?: string
  readonly toolCalls: number
  readonly toolCallsFailed: number
  readonly failedStep?: string
  readonly errorCode?: string
  readonly terminalEventId: string
}

/** Query: which step the pipeline is on. */
export const currentStepQueryName = 'currentStepQuery'

/** Pipeline steps in order. */
export const PIPELINE_STEPS = ['receive', 'route', 'plan', 'tools', 'synthesize', 'complete'] as const
export type PipelineStep = (typeof PIPELINE_STEPS)[number]

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
  /** First retry delay; later ones back off exponentially. */
  readonly retryInitialIntervalMs?: number
  /** Tool calls run at once. */
  readonly toolConcurrency?: number
}

/** Identifies a task for an activity; activities read everything else from the task's stream. */
export interface TaskRef {
  readonly tenantId: string
  readonly taskId: string
}
