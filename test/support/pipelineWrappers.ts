import { ApplicationFailure } from '@temporalio/activity'
import type { PipelineActivities } from '../../activities/pipelineActivities'
import { ToolRegistry } from '../../activities/tools/registry'
import { abortableDelay, hangUntilAborted, type CompensationContext, type ToolDefinition } from '../../activities/tools/tool'

/** How long a stuck compensation goes on after its attempt was aborted. */
const STUCK_AFTER_ABORT_MS = 3_000

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
  /**
   * Tools whose `compensate` hangs until its attempt is aborted and then for STUCK_AFTER_ABORT_MS more before it throws:
   * Temporal's timeout ends each attempt, and the last attempt's own failure record comes late.
   */
  readonly stuckCompensations?: readonly string[]
  /** Side-effecting tools whose result, after the side effect happened, fails the tool's result schema (TOOL_RESPONSE_MALFORMED). */
  readonly malformedResults?: readonly string[]
}

/** `registry` with the slow and stuck tools of `wrappers` wrapped; the registry itself when there are none. */
export function wrapTools(registry: ToolRegistry, wrappers: PipelineWrappers | undefined): ToolRegistry {
  if (!wrappers?.slowTools && !wrappers?.stuckCompensations && !wrappers?.malformedResults) return registry
  return new ToolRegistry(
    registry.definitions().map((tool: ToolDefinition<unknown, unknown>) => {
      const delayMs = wrappers.slowTools?.[tool.name]
      const stuck = wrappers.stuckCompensations?.includes(tool.name) === true
      const malformed = wrappers.malformedResults?.includes(tool.name) === true
      return {
        ...tool,
        execute: async (params, ctx) => {
          if (delayMs !== undefined) await abortableDelay(delayMs, ctx.abortSignal, `tool ${tool.name}`)
          const result = await tool.execute(params, ctx)
          return malformed ? { ...(result as object), delivered: 'perhaps' } : result
        },
        ...(stuck && tool.compensate
          ? {
              compensate: async (ctx: CompensationContext) => {
                await hangUntilAborted(ctx.abortSignal, `compensation of ${tool.name}`).catch(() => undefined)
                await new Promise((resolve) => setTimeout(resolve, STUCK_AFTER_ABORT_MS))
                throw new Error(`compensation of ${tool.name} never answered`)
              },
            }
          : {}),
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
