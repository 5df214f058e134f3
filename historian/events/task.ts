import { z } from 'zod'
import { EventMetadata } from './metadata'

/** The steps of the pipeline, in order: where a task is, or where it failed. */
export const PipelineStepName = z.enum(['receive', 'route', 'plan', 'tools', 'synthesize', 'complete'])
export type PipelineStepName = z.infer<typeof PipelineStepName>

/** A tenant's task was accepted by the pipeline; carries the input as received. */
export const AgentTaskReceived = z.object({
  type: z.literal('AgentTaskReceived'),
  data: z.object({
    input: z.string().min(1).max(100_000),
    inputSha256: z.string().regex(/^[0-9a-f]{64}$/),
    requestedBy: z.string().min(1),
  }),
  metadata: EventMetadata,
})
export type AgentTaskReceived = z.infer<typeof AgentTaskReceived>

/** The pipeline produced its final answer. */
export const AgentTaskCompleted = z.object({
  type: z.literal('AgentTaskCompleted'),
  data: z.object({
    answer: z.string(),
    answerSha256: z.string().regex(/^[0-9a-f]{64}$/),
    totalCostUsd: z.number().nonnegative(),
    totalTokens: z.number().int().nonnegative(),
    toolCallsSucceeded: z.number().int().nonnegative(),
    toolCallsFailed: z.number().int().nonnegative(),
  }),
  metadata: EventMetadata,
})
export type AgentTaskCompleted = z.infer<typeof AgentTaskCompleted>

/** The pipeline gave up: the step that failed and why. */
export const AgentTaskFailed = z.object({
  type: z.literal('AgentTaskFailed'),
  data: z.object({
    failedStep: PipelineStepName,
    errorCode: z.string().min(1),
    message: z.string(),
  }),
  metadata: EventMetadata,
})
export type AgentTaskFailed = z.infer<typeof AgentTaskFailed>

/** Task lifecycle events. */
export const TaskEvent = z.discriminatedUnion('type', [AgentTaskReceived, AgentTaskCompleted, AgentTaskFailed])
export type TaskEvent = z.infer<typeof TaskEvent>
