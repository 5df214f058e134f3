import { ApplicationFailure } from '@temporalio/activity'
import type { PipelineActivities } from '../../activities/pipelineActivities'
import { ToolRegistry } from '../../activities/tools/registry'
import { abortableDelay, type ToolDefinition } from '../../activities/tools/tool'

/**
 * Test wrappers around the real activities and tools of an in-process worker, for the awkward moments the fault plan
 * does not reach: a tool that takes its time, a tool call whose activity fails for good, a compensation that never ends.
 * Everything else stays real (Temporal, the database, the activities' own code).
 */
export interface PipelineWrappers {
  /** Tools whose `execute` waits this many milliseconds first (abortably), by tool name. */
  readonly slowTools?: Readonly<Record<string, number>>
  /** Tool call IDs whose executeToolCall activity fails at once, non-retryably, as a broken invariant would. */
  readonly failingToolCalls?: readonly string[]
  /** Tools whose `compensate` hangs, ignoring its abort signal, so that only Temporal's timeout ends the attempt. */
  readonly stuckCompensations?: readonly string[]
}

/** `registry` with the slow and stuck tools of `wrappers` wrapped; the registry itself when there are none. */
export function wrapTools(registry: ToolRegistry, wrappers: PipelineWrappers | undefined): ToolRegistry {
  if (!wrappers?.slowTools && !wrappers?.stuckCompensations) return registry
  return new ToolRegistry(
    registry.definitions().map((tool: ToolDefinition<unknown, unknown>) => {
      const delayMs = wrappers.slowTools?.[tool.name]
      const stuck = wrappers.stuckCompensations?.includes(tool.name) === true
      return {
        ...tool,
        execute: async (params, ctx) => {
          if (delayMs !== undefined) await abortableDelay(delayMs, ctx.abortSignal, `tool ${tool.name}`)
          return tool.execute(params, ctx)
        },
        ...(stuck && tool.compensate ? { compensate: () => new Promise<never>(() => undefined) } : {}),
      }
    }),
  )
}

/** `activities` with the failing tool calls of `wrappers` failing for good. */
export function wrapActivities(activities: PipelineActivities, wrappers: PipelineWrappers | undefined): PipelineActivities {
  const failing = wrappers?.failingToolCalls
  if (!failing || failing.length === 0) return activities
  return {
    ...activities,
    executeToolCall: async (input) => {
      if (failing.includes(input.toolCallId)) throw ApplicationFailure.nonRetryable(`test: tool call ${input.toolCallId} fails for good`, 'BROKEN_INVARIANT')
      return activities.executeToolCall(input)
    },
  }
}
