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

/** Tool call events. */
export const ToolEvent = z.discriminatedUnion('type', [ToolCallExecuted, ToolCallFailed])
export type ToolEvent = z.infer<typeof ToolEvent>
