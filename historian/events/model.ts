import { z } from 'zod'
import { ModelFailure, ModelInvocation } from './common'
import { ToolCallId } from './ids'
import { EventMetadata } from './metadata'

/**
 * The routes every routing step offered while `RoutingModelInvoked` was at schema version 1: the routing prompt
 * `route-task@1.0.0` listed exactly these, and its reply schema accepted nothing else. A historical fact, frozen here
 * for the v1 -> v2 upcaster: never edit it when today's routes change.
 */
export const ROUTES_OFFERED_IN_V1 = Object.freeze(['research', 'calculation', 'notification', 'account', 'general'] as const)

/** Data of RoutingModelInvoked v2: the invocation, the route chosen, and the routes the router was offered. */
export const RoutingModelInvokedData = ModelInvocation.extend({
  route: z.string().min(1),
  candidateRoutes: z
    .array(z.string().min(1))
    .min(1)
    .refine((routes) => new Set(routes).size === routes.length, 'candidateRoutes must be distinct'),
}).refine((data) => data.candidateRoutes.includes(data.route), { message: 'route must be one of candidateRoutes', path: ['route'] })
export type RoutingModelInvokedData = z.infer<typeof RoutingModelInvokedData>

/** The routing model chose how to handle the task (schema version 2: adds `candidateRoutes`). */
export const RoutingModelInvoked = z.object({
  type: z.literal('RoutingModelInvoked'),
  data: RoutingModelInvokedData,
  metadata: EventMetadata,
})
export type RoutingModelInvoked = z.infer<typeof RoutingModelInvoked>

/**
 * Upcaster of RoutingModelInvoked v1 -> v2. A v1 event did not record the routes offered, but they are known: every v1
 * event was written by a build whose routing step offered exactly ROUTES_OFFERED_IN_V1. The route the model chose was
 * necessarily offered, so it is added if some writer recorded a route outside that list (none of ours did).
 */
export function upcastRoutingModelInvokedV1(data: Record<string, unknown>): Record<string, unknown> {
  const offered: string[] = [...ROUTES_OFFERED_IN_V1]
  if (typeof data.route === 'string' && data.route !== '' && !offered.includes(data.route)) offered.push(data.route)
  return { ...data, candidateRoutes: offered }
}

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

/**
 * One iteration of a long agent loop: the planner looked at everything done so far and asked for the next tool calls,
 * or said it is done. Tool calls accumulate across iterations (PlanCreated, by contrast, is the whole plan).
 */
export const PlanIterationCreated = z.object({
  type: z.literal('PlanIterationCreated'),
  data: ModelInvocation.extend({
    iteration: z.number().int().positive(),
    toolCalls: z.array(PlannedToolCall).max(64),
    done: z.boolean(),
  }),
  metadata: EventMetadata,
})
export type PlanIterationCreated = z.infer<typeof PlanIterationCreated>

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
  PlanIterationCreated,
  PlanningModelFailed,
  SynthesisModelInvoked,
  SynthesisModelFailed,
])
export type ModelEvent = z.infer<typeof ModelEvent>
