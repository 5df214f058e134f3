import { ToolRegistry } from '../../activities/tools/registry'
import { hangUntilAborted, ToolName, type CompensationContext, type ToolDefinition } from '../../activities/tools/tool'
import { crashRulesOf, matchFault, type FaultPlan } from './faultPlan'

/** What a tool's API answers under a `malformed` fault: a garbage balance for the account API, a bare error string otherwise. */
const MALFORMED_RESULTS: Readonly<Record<string, (result: unknown) => unknown>> = {
  [ToolName.lookupAccount]: (result) => ({ ...(result as object), balanceUsd: '#ERR:N/A' }),
}
const malformed = (toolName: string, result: unknown) => (MALFORMED_RESULTS[toolName] ?? (() => '#ERR:N/A'))(result)

/**
 * `tool` with the plan's faults on its target `tool:<name>`: `timeout` hangs until the activity's signal aborts it,
 * `malformed` spoils what its API answered (which the tool's result schema then rejects). Its compensation crashes the
 * process (`crash`) right after the side effect was undone and before anything is recorded, for a `crash_after_append`
 * rule on `compensation_sent`.
 */
function faultyTool(tool: ToolDefinition<unknown, unknown>, plan: FaultPlan, crash: () => void): ToolDefinition<unknown, unknown> {
  const target = `tool:${tool.name}`
  const crashRules = crashRulesOf(plan)
  const compensate = tool.compensate?.bind(tool)
  return {
    ...tool,
    execute: async (params, ctx) => {
      const fault = matchFault(plan, { target, tenantId: ctx.tenantId, taskId: ctx.taskId, attempt: ctx.attempt })
      if (fault?.kind === 'timeout') return hangUntilAborted(ctx.abortSignal, `tool ${tool.name}`)
      const result = await tool.execute(params, ctx)
      return fault?.kind === 'malformed' ? malformed(tool.name, result) : result
    },
    ...(compensate
      ? {
          compensate: async (ctx: CompensationContext) => {
            const done = await compensate(ctx)
            if (matchFault(crashRules, { target: 'compensation_sent', tenantId: ctx.tenantId, taskId: ctx.taskId, attempt: ctx.attempt })) crash()
            return done
          },
        }
      : {}),
  }
}

/** A wrapper (ActivityDecorators.tools) giving every tool of a registry the plan's tool faults. */
export function withToolFaults(plan: FaultPlan, crash: () => void): (registry: ToolRegistry) => ToolRegistry {
  return (registry) => new ToolRegistry(registry.definitions().map((tool) => faultyTool(tool, plan, crash)))
}
