import { z } from 'zod'
import { ToolCallId } from './ids'
import { EventMetadata } from './metadata'

const ToolCallFacts = z.object({
  toolCallId: ToolCallId,
  toolName: z.string().min(1),
  parameters: z.record(z.string(), z.unknown()),
  idempotencyKey: z.string().min(1),
  sideEffectId: z.string().min(1).nullable(),
  latencyMs: z.number().nonnegative(),
})

/** A tool ran and returned a result that passed its schema. */
export const ToolCallExecuted = z.object({
  type: z.literal('ToolCallExecuted'),
  data: ToolCallFacts.extend({ result: z.unknown() }),
  metadata: EventMetadata,
})
export type ToolCallExecuted = z.infer<typeof ToolCallExecuted>

/** How a tool call failed. */
export const ToolErrorCode = z.enum(['TOOL_RESPONSE_MALFORMED', 'TOOL_UNKNOWN', 'TOOL_INVALID_PARAMETERS', 'TOOL_EXECUTION_ERROR', 'TOOL_TIMEOUT'])
export type ToolErrorCode = z.infer<typeof ToolErrorCode>

/** A tool call failed; the task may still complete without its result. */
export const ToolCallFailed = z.object({
  type: z.literal('ToolCallFailed'),
  data: ToolCallFacts.extend({ errorCode: ToolErrorCode, message: z.string() }),
  metadata: EventMetadata,
})
export type ToolCallFailed = z.infer<typeof ToolCallFailed>

/** Which side effect a compensation undoes. */
const CompensationFacts = z.object({
  toolCallId: ToolCallId,
  toolName: z.string().min(1),
  /** The side effect being undone, as ToolCallExecuted recorded it. */
  sideEffectId: z.string().min(1),
  /** The compensation's own idempotency key: the tool undoes a side effect at most once per key. */
  idempotencyKey: z.string().min(1),
  latencyMs: z.number().nonnegative(),
})

/**
 * A side effect of a task that then failed was undone (saga style): the tool's compensation ran, exactly once, and
 * `compensationId` names what it did (for example the retraction it sent).
 */
export const ToolCallCompensated = z.object({
  type: z.literal('ToolCallCompensated'),
  data: CompensationFacts.extend({ compensationId: z.string().min(1) }),
  metadata: EventMetadata,
})
export type ToolCallCompensated = z.infer<typeof ToolCallCompensated>

/** A compensation could not be carried out: the side effect stands, and someone must look at it. */
export const ToolCompensationFailed = z.object({
  type: z.literal('ToolCompensationFailed'),
  data: CompensationFacts.extend({ errorCode: z.string().min(1), message: z.string() }),
  metadata: EventMetadata,
})
export type ToolCompensationFailed = z.infer<typeof ToolCompensationFailed>

/** Tool call events. */
export const ToolEvent = z.discriminatedUnion('type', [ToolCallExecuted, ToolCallFailed, ToolCallCompensated, ToolCompensationFailed])
export type ToolEvent = z.infer<typeof ToolEvent>
