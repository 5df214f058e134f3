import type { AnnalistEvent } from '../../historian/events'
import type { Historian } from '../../historian/historian'
import { crashRulesOf, matchFault, type FaultPlan } from './faultPlan'

/** The `crash_after_append` target an outcome event stands for, if any (failed-attempt records stand for none). */
function crashTarget(event: AnnalistEvent): string | undefined {
  switch (event.type) {
    case 'RoutingModelInvoked':
      return 'routing'
    case 'PlanCreated':
    case 'PlanIterationCreated':
      return 'planning'
    case 'SynthesisModelInvoked':
      return 'synthesis'
    case 'ToolCallExecuted':
    case 'ToolCallFailed':
      return `tool:${event.data.toolName}`
    case 'TaskDeadLettered':
      return 'dead_letter'
    case 'ToolCallCompensated':
    case 'ToolCompensationFailed':
      return 'compensation'
    case 'TaskRunContinued':
      return 'run_continued'
    default:
      return undefined
  }
}

/**
 * A wrapper (ActivityDecorators.historian) around the historian port for the most awkward moment of all: it ends the
 * process (`crash`, a SIGKILL) right after an outcome was stored and before the activity could report it to Temporal,
 * for each `crash_after_append` rule whose target, tenant, task and attempt (the event's) match an event just appended.
 * An append that lost a race, or an outcome found already recorded, stores nothing and so crashes nothing.
 */
export function crashAfterAppend(plan: FaultPlan, crash: () => void): (historian: Historian) => Historian {
  const rules = crashRulesOf(plan)
  return (historian) =>
    new Proxy(historian, {
      get(target, property) {
        if (property === 'appendToTask') {
          const appendToTask: Historian['appendToTask'] = async (tenantId, taskId, pending, after) => {
            const appended = await target.appendToTask(tenantId, taskId, pending, after)
            for (const { event } of pending) {
              const where = crashTarget(event)
              if (where !== undefined && matchFault(rules, { target: where, tenantId, taskId, attempt: event.metadata.attempt })) crash()
            }
            return appended
          }
          return appendToTask
        }
        const value: unknown = Reflect.get(target, property, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
}
