import { z } from 'zod'
import { PIPELINE_STEPS } from './catalogue'
import { EventMetadata } from './metadata'

/** The steps of the pipeline, in order: where a task is, or where it failed. */
export const PipelineStepName = z.enum(PIPELINE_STEPS)
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

/** Who asked for a cancel: a named operator through Annalist, or nobody Annalist knows (Temporal's UI or CLI). */
export const CancelSource = z.enum(['annalist', 'temporal'])
export type CancelSource = z.infer<typeof CancelSource>

/** Longest requester name and reason a cancel records (operator text, bounded like every free text in an event). */
export const MAX_CANCEL_REQUESTER_LENGTH = 200
export const MAX_CANCEL_REASON_LENGTH = 1_000

/**
 * The pipeline was cancelled: who asked and why (null when the cancel came from outside Annalist, for example Temporal's
 * UI), the step it was in, and how the side effects of the run fared (compensated, or recorded as not compensated).
 */
export const AgentTaskCancelled = z.object({
  type: z.literal('AgentTaskCancelled'),
  data: z.object({
    cancelledStep: PipelineStepName,
    source: CancelSource,
    requestedBy: z.string().min(1).max(MAX_CANCEL_REQUESTER_LENGTH).nullable(),
    reason: z.string().min(1).max(MAX_CANCEL_REASON_LENGTH).nullable(),
    sideEffectsCompensated: z.number().int().nonnegative(),
    compensationsFailed: z.number().int().nonnegative(),
  }),
  metadata: EventMetadata,
})
export type AgentTaskCancelled = z.infer<typeof AgentTaskCancelled>

/** Task lifecycle events. */
export const TaskEvent = z.discriminatedUnion('type', [AgentTaskReceived, AgentTaskCompleted, AgentTaskFailed, AgentTaskCancelled])

/** The events that end a pipeline run: exactly one per run. */
export const TERMINAL_TASK_EVENT_TYPES = ['AgentTaskCompleted', 'AgentTaskFailed', 'AgentTaskCancelled'] as const
export type TerminalTaskEventType = (typeof TERMINAL_TASK_EVENT_TYPES)[number]

/** Whether an event type ends a pipeline run. */
export function isTerminalTaskEventType(type: string): type is TerminalTaskEventType {
  return (TERMINAL_TASK_EVENT_TYPES as readonly string[]).includes(type)
}
export type TaskEvent = z.infer<typeof TaskEvent>
