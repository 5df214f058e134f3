import { z } from 'zod'
import { ModelFailure, ModelInvocation } from './common'
import { ToolCallId } from './ids'
import { EventMetadata } from './metadata'

/** The routing model chose how to handle the task. */
export const RoutingModelInvoked = z.object({
  type: z.literal('RoutingModelInvoked'),
  data: ModelInvocation.extend({ route: z.string().min(1) }),
  metadata: EventMetadata,
})
export type RoutingModelInvoked = z.infer<typeof RoutingModelInvoked>

/** A routing model call failed. */
export const RoutingModelFailed = z.object({ type: z.literal('RoutingModelFailed'), data: ModelFailure, metadata: EventMetadata })
export type RoutingModelFailed = z.infer<typeof RoutingModelFailed>

/** One tool call the planner asked for. */
export const PlannedToolCall = z.object({
  toolCallId: ToolCallId,
  toolName: z.string().min(1),
  parameters: z.record(z.string(), z.unknown()),
})
export type PlannedToolCall = z.infer<typeof PlannedToolCall>

/** The planning model produced a plan of tool calls. */
export const PlanCreated = z.object({
  type: z.literal('PlanCreated'),
  data: ModelInvocation.extend({ toolCalls: z.array(PlannedToolCall).max(64) }),
  metadata: EventMetadata,
})
export type PlanCreated = z.infer<typeof PlanCreated>

/** A planning model call failed. */
export const PlanningModelFailed = z.object({ type: z.literal('PlanningModelFailed'), data: ModelFailure, metadata: EventMetadata })
export type PlanningModelFailed = z.infer<typeof PlanningModelFailed>

/** The synthesis model wrote the answer from the tool results. */
export const SynthesisModelInvoked = z.object({
  type: z.literal('SynthesisModelInvoked'),
  data: ModelInvocation.extend({ answer: z.string() }),
  metadata: EventMetadata,
})
export type SynthesisModelInvoked = z.infer<typeof SynthesisModelInvoked>

/** A synthesis model call failed. */
export const SynthesisModelFailed = z.object({ type: z.literal('SynthesisModelFailed'), data: ModelFailure, metadata: EventMetadata })
export type SynthesisModelFailed = z.infer<typeof SynthesisModelFailed>

/** Model invocation events of all three roles. */
export const ModelEvent = z.discriminatedUnion('type', [
  RoutingModelInvoked,
  RoutingModelFailed,
  PlanCreated,
  PlanningModelFailed,
  SynthesisModelInvoked,
  SynthesisModelFailed,
])
export type ModelEvent = z.infer<typeof ModelEvent>
