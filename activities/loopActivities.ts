import type { TaskRunContinued } from '../historian/events'
import { foldTask } from '../historian/taskState'
import type { TaskRef } from '../workflows/api'
import { MAX_LOOP_ITERATIONS, MAX_TOOL_CALLS_PER_ITERATION } from '../workflows/api'
import { currentActivityScope, withHeartbeat } from './activityScope'
import { activityEvent, lastEventIdOf } from './activityEvent'
import { brokenInvariant } from './failures'
import { planIterationStep } from './loopModelSteps'
import { runModelStep } from './runModelStep'
import { toolCallIdPrefix } from './models/loopPrompts'
import type { ActivityDeps } from './activityDeps'
import { recordOnce } from './recordOnce'

/** Input of one loop planner iteration. */
export interface PlanIterationInput extends TaskRef {
  readonly iteration: number
  readonly maxIterations: number
  readonly toolCallsPerIteration: number
}

/** Input of the TaskRunContinued record: TaskRunContinued's data. */
export type RunContinuedInput = TaskRef & TaskRunContinued['data']

const isCount = (value: number, min: number, max: number) => Number.isInteger(value) && value >= min && value <= max

/** The activities of long agent loops (workflows/agentLoop.ts): a planner iteration, and the continue-as-new record. */
export function createLoopActivities(deps: ActivityDeps) {
  /** One planner iteration (activity ID `plan:<iteration>`): records PlanIterationCreated once and returns its tool call IDs. */
  async function planIteration(input: PlanIterationInput): Promise<{ toolCallIds: string[]; done: boolean; eventId: string }> {
    if (!isCount(input.maxIterations, 1, MAX_LOOP_ITERATIONS) || !isCount(input.iteration, 1, input.maxIterations)) {
      throw brokenInvariant(`loop iteration ${input.iteration} of ${input.maxIterations} is out of range (1..${MAX_LOOP_ITERATIONS})`)
    }
    if (!isCount(input.toolCallsPerIteration, 1, MAX_TOOL_CALLS_PER_ITERATION)) {
      throw brokenInvariant(`toolCallsPerIteration ${input.toolCallsPerIteration} is out of range (1..${MAX_TOOL_CALLS_PER_ITERATION})`)
    }
    const scope = currentActivityScope(input)
    const loop = { iteration: input.iteration, maxIterations: input.maxIterations, maxToolCalls: input.toolCallsPerIteration, toolCallIdPrefix: toolCallIdPrefix(input.iteration) }
    const outcome = await runModelStep(deps, scope, planIterationStep(deps.tools, loop))
    const event = outcome.events[0]
    if (event?.type !== 'PlanIterationCreated') throw brokenInvariant(`loop planning outcome is ${event?.type}`)
    return { toolCallIds: event.data.toolCalls.map((call) => call.toolCallId), done: event.data.done, eventId: outcome.eventIds[0]! }
  }

  /**
   * Records that the loop hands over to a fresh Temporal run (activity ID `continue:<iteration>`), once. The recorded
   * state must agree: that many iterations, every tool call with an outcome.
   */
  async function recordRunContinued(input: RunContinuedInput): Promise<{ eventId: string }> {
    const { tenantId, taskId, ...data } = input
    const scope = currentActivityScope({ tenantId, taskId })
    const outcome = await withHeartbeat(scope, () =>
      recordOnce({
        historian: deps.historian,
        scope,
        work: async (stream) => {
          const state = foldTask(stream.events.map((stored) => stored.event))
          const done = state.toolCalls.filter((call) => call.toolCallId in state.toolOutcomes).length
          if (state.iterations !== data.iterationsDone || done !== state.toolCalls.length || done !== data.toolCallsDone) {
            throw brokenInvariant(
              `cannot continue ${tenantId}/${taskId} after iteration ${data.iterationsDone} with ${data.toolCallsDone} tool calls done: ` +
                `the stream records ${state.iterations} iterations and ${done} of ${state.toolCalls.length} tool calls done`,
            )
          }
          return [activityEvent('TaskRunContinued', data, scope, deps.clock(), lastEventIdOf(stream))]
        },
      }),
    )
    return { eventId: outcome.eventIds[0]! }
  }

  return { planIteration, recordRunContinued }
}
