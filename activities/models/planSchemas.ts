import { z } from 'zod'
import { ToolCallId, type PlannedToolCall } from '../../historian/events'
import type { ToolRegistry } from '../tools/registry'
import type { LoopPosition } from './loopPrompts'
import { MAX_PLANNED_TOOL_CALLS } from './prompts'

const distinctIds = (calls: readonly { toolCallId: string }[]) => new Set(calls.map((call) => call.toolCallId)).size === calls.length

/**
 * One planned call of a registered tool: a union over each tool's own parameter schema (not an open record), so strict
 * JSON-schema modes accept it, constrained decoding writes only valid arguments, and a small model sees what each tool takes.
 */
export function plannedToolCallSchema(tools: ToolRegistry, toolCallId: z.ZodType<string> = ToolCallId): z.ZodType<PlannedToolCall> {
  const options = tools.definitions().map((tool) => z.strictObject({ toolCallId, toolName: z.literal(tool.name), parameters: tool.parameters as z.ZodType<Record<string, unknown>> }))
  const [first, ...rest] = options
  if (!first) return z.never()
  return (rest.length === 0 ? first : z.discriminatedUnion('toolName', [first, ...rest])) as z.ZodType<PlannedToolCall>
}

/** The planner's reply for this worker's tools: at most MAX_PLANNED_TOOL_CALLS calls with distinct IDs. */
export function planningReplySchema(tools: ToolRegistry): z.ZodType<{ toolCalls: PlannedToolCall[] }> {
  return z.strictObject({ toolCalls: z.array(plannedToolCallSchema(tools)).max(MAX_PLANNED_TOOL_CALLS).refine(distinctIds, 'toolCallIds must be distinct') })
}

/**
 * A loop iteration's reply: at most the iteration's number of calls, each ID the iteration's prefix and a number (so IDs
 * stay unique across iterations), distinct, and whether the task is done.
 */
export function loopPlanningReplySchema(tools: ToolRegistry, loop: LoopPosition): z.ZodType<{ toolCalls: PlannedToolCall[]; done: boolean }> {
  const prefixed = z.string().regex(new RegExp(`^${loop.toolCallIdPrefix.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')}[0-9]{1,3}$`), `tool call IDs start with ${loop.toolCallIdPrefix}, then a number`)
  return z.strictObject({
    toolCalls: z.array(plannedToolCallSchema(tools, prefixed)).max(loop.maxToolCalls).refine(distinctIds, 'toolCallIds must be distinct'),
    done: z.boolean(),
  })
}
