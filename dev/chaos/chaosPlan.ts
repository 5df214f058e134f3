import type { FaultPlan, FaultRule } from '../faults/faultPlan'
import { TASK_INPUTS, TENANT_NAMES, type DemoTask } from '../demo/demoScenario'
import { seededRandom } from './seededRandom'
import { MODEL_ROLES } from '../../historian/events/catalogue'

/** The kinds of fault a campaign injects: four from outside (processes and servers killed), two through the fault plan. */
export const CHAOS_FAULT_KINDS = ['worker', 'projector', 'postgres', 'temporal', 'model', 'tool'] as const
export type ChaosFaultKind = (typeof CHAOS_FAULT_KINDS)[number]

/** Faults the campaign injects from outside, at a moment measured in model calls started (the run's progress). */
export const EXTERNAL_FAULT_KINDS = ['worker', 'projector', 'postgres', 'temporal'] as const
export type ExternalFaultKind = (typeof EXTERNAL_FAULT_KINDS)[number]

/** One scheduled external fault: inject `kind` once the model ledger holds `atModelCall` calls. */
export interface ScheduledFault {
  readonly kind: ExternalFaultKind
  readonly atModelCall: number
}

/** Everything a campaign does, derived from its seed alone. */
export interface ChaosPlan {
  readonly seed: number
  readonly tenants: readonly string[]
  readonly tasks: readonly DemoTask[]
  /** Model timeouts and malformed tool answers: seeded rates plus one certain hit of each, for the worker processes. */
  readonly faultPlan: FaultPlan
  /** External faults in the order they fire. */
  readonly schedule: readonly ScheduledFault[]
}

/** Thrown when `--faults` names a kind the campaign does not know. */
export class UnknownFaultKindError extends Error {
  constructor(readonly kind: string) {
    super(`unknown fault kind ${JSON.stringify(kind)} in --faults; choose from ${CHAOS_FAULT_KINDS.join(', ')}`)
    this.name = 'UnknownFaultKindError'
  }
}

/** Parses `--faults worker,model,...` (order and repeats do not matter; empty means none). */
export function parseFaultKinds(text: string): ReadonlySet<ChaosFaultKind> {
  const kinds = new Set<ChaosFaultKind>()
  for (const part of text.split(',').map((kind) => kind.trim()).filter((kind) => kind.length > 0)) {
    if (!(CHAOS_FAULT_KINDS as readonly string[]).includes(part)) throw new UnknownFaultKindError(part)
    kinds.add(part as ChaosFaultKind)
  }
  return kinds
}

/** The demo's inputs plus a second account lookup, so malformed account answers have more calls to hit. */
const CHAOS_TASK_INPUTS = [...TASK_INPUTS, 'Look up account ACC-2077 and summarize its plan and status']
const LOOKS_UP_ACCOUNT = /look up account/i

/** Model calls a task makes when nothing fails: routing, planning, synthesis. */
export const MODEL_CALLS_PER_TASK = 3
/** Share of model calls (attempts 1 and 2) that hang until their timeout. */
export const MODEL_TIMEOUT_RATE = 0.04
/** Share of account lookups (first attempt) the simulated account API answers with garbage. */
export const TOOL_MALFORMED_RATE = 0.3

/** How many external faults of each kind a campaign of `tasks` tasks injects. */
export function externalFaultCounts(tasks: number): Record<ExternalFaultKind, number> {
  return {
    worker: Math.max(1, Math.round(tasks / 12)),
    projector: Math.max(1, Math.round(tasks / 30)),
    postgres: Math.max(1, Math.round(tasks / 50)),
    temporal: Math.max(1, Math.round(tasks / 50)),
  }
}

/**
 * Derives a campaign from its seed: the tasks (tenant x task number, run-tagged IDs), the fault plan the workers use
 * (model timeouts and malformed account lookups at seeded rates, plus one certain hit of each kind on a seeded task: a
 * first routing call, a first account lookup),
 * and when each external fault fires, as a count of model calls started, spread over the first 70% of the expected calls
 * so every one fires while pipelines are still running.
 */
export function chaosPlan(options: { seed: number; runTag: string; tenants: number; tasksPerTenant: number; kinds: ReadonlySet<ChaosFaultKind> }): ChaosPlan {
  const random = seededRandom(options.seed)
  const tenants = Array.from({ length: options.tenants }, (_, i) => TENANT_NAMES[i] ?? `tenant_${i + 1}`)
  const tasks: DemoTask[] = tenants.flatMap((tenantId, t) =>
    Array.from({ length: options.tasksPerTenant }, (_, i) => ({ tenantId, taskId: `${options.runTag}-${i + 1}`, input: CHAOS_TASK_INPUTS[(i + t) % CHAOS_TASK_INPUTS.length]! })),
  )
  const pickTask = (candidates: readonly DemoTask[]) => candidates[Math.floor(random() * candidates.length)]!
  const rules: FaultRule[] = []
  if (options.kinds.has('model')) {
    // Routing: the one model call every task surely makes, whatever happens to it later.
    const certain = pickTask(tasks)
    rules.push({ target: 'routing', kind: 'timeout', tenantId: certain.tenantId, taskId: certain.taskId, attempts: [1] })
    for (const target of MODEL_ROLES) rules.push({ target, kind: 'timeout', attempts: [1, 2], rate: MODEL_TIMEOUT_RATE, seed: options.seed })
  }
  if (options.kinds.has('tool')) {
    const lookups = tasks.filter((task) => LOOKS_UP_ACCOUNT.test(task.input))
    const certain = pickTask(lookups)
    // Every attempt, not just the first: a worker kill may cut the first attempt short, and the hit must still land.
    rules.push({ target: 'tool:lookup_account', kind: 'malformed', tenantId: certain.tenantId, taskId: certain.taskId, attempts: [1, 2, 3, 4, 5] })
    rules.push({ target: 'tool:lookup_account', kind: 'malformed', attempts: [1], rate: TOOL_MALFORMED_RATE, seed: options.seed })
  }
  const expectedCalls = tasks.length * MODEL_CALLS_PER_TASK
  const counts = externalFaultCounts(tasks.length)
  const schedule: ScheduledFault[] = EXTERNAL_FAULT_KINDS.filter((kind) => options.kinds.has(kind))
    .flatMap((kind) => Array.from({ length: counts[kind] }, () => ({ kind, atModelCall: 1 + Math.floor(random() * expectedCalls * 0.7) })))
    .sort((a, b) => a.atModelCall - b.atModelCall)
  return { seed: options.seed, tenants, tasks, faultPlan: { rules }, schedule }
}
