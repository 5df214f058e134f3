import type { ActivityDecorators } from '../../cli/runtime/activityDeps'
import { crashAfterAppend } from './crashAfterAppend'
import type { FaultPlan } from './faultPlan'
import { withModelFaults } from './faultyModel'
import { withToolFaults } from './faultyTools'

/** Ends this process at once, as a kill -9 from outside would: nothing gets to clean up or report. */
export const sigkillThisProcess = (): void => {
  process.kill(process.pid, 'SIGKILL')
}

/**
 * The wrappers that inject a fault plan into a worker's activities: model faults around every role's model, tool faults
 * around every tool, and `crash_after_append` around the historian. No rules, no wrappers.
 */
export function faultDecorators(plan: FaultPlan, crash: () => void = sigkillThisProcess): ActivityDecorators {
  if (plan.rules.length === 0) return {}
  return { historian: crashAfterAppend(plan, crash), model: withModelFaults(plan), tools: withToolFaults(plan, crash) }
}
