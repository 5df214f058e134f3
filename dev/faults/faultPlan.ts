import { createHash } from 'node:crypto'
import { z } from 'zod'

/** Ways an injected fault makes a model or tool fail, in the terms real systems fail. */
export const FaultKind = z.enum(['timeout', 'malformed', 'context_length', 'crash_after_append'])
export type FaultKind = z.infer<typeof FaultKind>

/**
 * What a fault hits: one model role, one tool as `tool:<name>`, or `dead_letter` (recording a task's dead letter; crash_after_append only).
 * `compensation` and `compensation_sent` are crash_after_append only: right after ToolCallCompensated is stored, and
 * mid-compensation, after the tool undid the side effect but before the event is appended.
 * `run_continued` is crash_after_append only: right after a long loop's TaskRunContinued is stored, before continue-as-new.
 */
export const FaultTarget = z.union([
  z.enum(['routing', 'planning', 'synthesis', 'dead_letter', 'compensation', 'compensation_sent', 'run_continued']),
  z.string().regex(/^tool:[a-z0-9_]{1,64}$/, 'a tool fault target must look like tool:<name>, e.g. tool:lookup_account'),
])
export type FaultTarget = z.infer<typeof FaultTarget>

/**
 * One injected fault: which target fails how, optionally only for one tenant or task, on the listed attempts (default the
 * first). With `rate`, it hits each matching call only with that probability, drawn from a hash of `seed` and the call,
 * so every process (and every rerun with the same seed) decides the same way for the same call.
 */
export const FaultRule = z.strictObject({
  target: FaultTarget,
  kind: FaultKind,
  tenantId: z.string().min(1).optional(),
  taskId: z.string().min(1).optional(),
  attempts: z.array(z.number().int().positive()).min(1).default([1]),
  rate: z.number().min(0).max(1).optional(),
  seed: z.number().int().nonnegative().optional(),
})
export type FaultRule = z.infer<typeof FaultRule>

/** A plan of injected faults, used by the demo and by crash and retry tests. The first matching rule wins. */
export const FaultPlan = z.strictObject({ rules: z.array(FaultRule) })
export type FaultPlan = z.infer<typeof FaultPlan>

/** The call a fault may apply to. */
export interface FaultProbe {
  target: string
  tenantId: string
  taskId: string
  attempt: number
}

/** Thrown when a fault plan (for example the `ANNALIST_FAULTS` variable) is not valid JSON or not a valid plan. */
export class FaultPlanError extends Error {
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`${source} is not a valid fault plan: ${problems.join('; ')}`)
    this.name = 'FaultPlanError'
  }
}

/**
 * A number in [0, 1) fixed by the seed, the rule's target and kind, and the call (tenant, task, attempt): the draw a
 * rule with a `rate` compares against. Pure, so any process can tell afterwards whether a call was hit.
 */
export function faultDraw(rule: Pick<FaultRule, 'target' | 'kind' | 'seed'>, probe: FaultProbe): number {
  const digest = createHash('sha256').update(`${rule.seed ?? 0}|${rule.target}|${rule.kind}|${probe.tenantId}|${probe.taskId}|${probe.attempt}`).digest()
  return digest.readUInt32BE(0) / 4_294_967_296
}

/** The first rule of `plan` that applies to this target, tenant, task and attempt (and wins its seeded draw, if it has a rate), if any. */
export function matchFault(plan: FaultPlan | undefined, probe: FaultProbe): FaultRule | undefined {
  return plan?.rules.find(
    (rule) =>
      rule.target === probe.target &&
      (rule.tenantId === undefined || rule.tenantId === probe.tenantId) &&
      (rule.taskId === undefined || rule.taskId === probe.taskId) &&
      rule.attempts.includes(probe.attempt) &&
      (rule.rate === undefined || faultDraw(rule, probe) < rule.rate),
  )
}

/** The plan's `crash_after_append` rules only, so that no other fault on the same target answers for them. */
export function crashRulesOf(plan: FaultPlan): FaultPlan {
  return { rules: plan.rules.filter((rule) => rule.kind === 'crash_after_append') }
}

/** Validates a fault plan given as a value (e.g. from a config file); `source` names it in the error. */
export function parseFaultPlan(value: unknown, source = 'fault plan'): FaultPlan {
  const parsed = FaultPlan.safeParse(value)
  if (!parsed.success) {
    throw new FaultPlanError(
      source,
      parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`),
    )
  }
  return parsed.data
}

/** The fault plan in `ANNALIST_FAULTS` (JSON); no faults when the variable is unset or empty. */
export function faultPlanFromEnv(env: NodeJS.ProcessEnv): FaultPlan {
  const raw = env.ANNALIST_FAULTS?.trim()
  if (!raw) return { rules: [] }
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch (error) {
    throw new FaultPlanError('ANNALIST_FAULTS', [`not valid JSON (${(error as Error).message})`])
  }
  return parseFaultPlan(value, 'ANNALIST_FAULTS')
}
