import type { FaultPlan } from '../faults/faultPlan'
import type { TaskRef } from '../../workflows/api'

/** Tenant names of generated workloads, in order (more tenants get tenant_<n>). */
export const TENANT_NAMES = ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark', 'wayne', 'tyrell', 'cyberdyne', 'soylent']

/** Task inputs of generated workloads, one per route the scripted model knows. */
export const TASK_INPUTS = [
  'Calculate (1250 * 12) + 380 for the annual budget line',
  'Notify the on-call team on slack that the nightly export finished',
  'Look up account ACC-1042 and summarize its balance',
  'Search the knowledge base for the data retention policy',
  'Find the refund policy and notify support by email',
]

/** One task the demo submits. */
export interface DemoTask extends TaskRef {
  readonly input: string
}

/** The demo's workload and the faults injected into it. */
export interface DemoScenario {
  readonly tenants: readonly string[]
  readonly tasks: readonly DemoTask[]
  readonly faults: FaultPlan
  /** The task whose synthesis call is interrupted by a SIGKILL of the worker from outside. */
  readonly externalKillVictim: TaskRef
  /** Tasks expected to fail for good (a context-length error no retry can fix). */
  readonly expectedFailures: readonly TaskRef[]
}

/** Builds a reproducible scenario: `tenantCount` tenants with `tasksPerTenant` tasks each, IDs tagged with the run. */
export function demoScenario(runTag: string, tenantCount: number, tasksPerTenant: number): DemoScenario {
  const tenants = Array.from({ length: tenantCount }, (_, i) => TENANT_NAMES[i] ?? `tenant_${i + 1}`)
  const taskId = (n: number) => `${runTag}-${n}`
  const tasks = tenants.flatMap((tenantId) =>
    Array.from({ length: tasksPerTenant }, (_, i) => ({ tenantId, taskId: taskId(i + 1), input: TASK_INPUTS[i % TASK_INPUTS.length]! })),
  )
  const pick = (tenantIndex: number, taskNumber: number): TaskRef => ({
    tenantId: tenants[tenantIndex % tenants.length]!,
    taskId: taskId(Math.min(taskNumber, tasksPerTenant)),
  })
  const at = (ref: TaskRef) => ({ tenantId: ref.tenantId, taskId: ref.taskId })
  const contextOverflow = pick(2, 4)
  const faults: FaultPlan = {
    rules: [
      // A routing call that hangs until its timeout, then succeeds on retry.
      { target: 'routing', kind: 'timeout', ...at(pick(0, 2)), attempts: [1, 2] },
      // A planner reply that is not the JSON asked for, then a good one.
      { target: 'planning', kind: 'malformed', ...at(pick(1, 1)), attempts: [1, 2] },
      // A prompt too long for the model: no retry helps, the task fails and says why.
      { target: 'synthesis', kind: 'context_length', ...at(contextOverflow), attempts: [1, 2, 3, 4] },
      // An external account API that answers garbage for one tenant: recorded as ToolCallFailed.
      { target: 'tool:lookup_account', kind: 'malformed', tenantId: tenants[1 % tenants.length]!, attempts: [1, 2, 3, 4, 5] },
      // The worker dies right after recording a plan, before Temporal hears the activity finished.
      { target: 'planning', kind: 'crash_after_append', ...at(pick(0, 1)), attempts: [1] },
      // The worker dies right after a notification went to the outbox and was recorded.
      { target: 'tool:send_notification', kind: 'crash_after_append', ...at(pick(2, 2)), attempts: [1] },
    ],
  }
  return { tenants, tasks, faults, externalKillVictim: pick(1, 4), expectedFailures: [contextOverflow] }
}
