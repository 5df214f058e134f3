import type { z } from 'zod'
import type { ToolRegistry } from './registry'
import type { ToolContext, ToolOutcome } from './tool'

function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ')
}

function sideEffectIdOf(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null
  const id = (value as { sideEffectId?: unknown }).sideEffectId
  return typeof id === 'string' && id.length > 0 ? id : null
}

/**
 * Runs one planned tool call. Expected failures come back as outcomes, never as exceptions: an unknown tool is
 * TOOL_UNKNOWN, parameters failing the tool's schema TOOL_INVALID_PARAMETERS (nothing runs), a result failing the
 * tool's result schema TOOL_RESPONSE_MALFORMED (naming the failing field), a throw TOOL_EXECUTION_ERROR, and a throw
 * after the activity's signal fired TOOL_TIMEOUT. A side-effecting tool's `sideEffectId` is kept even when its
 * response is malformed, because the side effect may already have happened.
 */
export async function runTool(
  registry: ToolRegistry,
  call: { toolName: string; parameters: Record<string, unknown> },
  ctx: ToolContext,
): Promise<ToolOutcome> {
  const tool = registry.get(call.toolName)
  if (!tool) {
    const known = registry.list().map((entry) => entry.name)
    return { ok: false, errorCode: 'TOOL_UNKNOWN', message: `unknown tool ${JSON.stringify(call.toolName)}; known tools: ${known.join(', ')}`, sideEffectId: null }
  }
  const params = tool.parameters.safeParse(call.parameters)
  if (!params.success) {
    return {
      ok: false,
      errorCode: 'TOOL_INVALID_PARAMETERS',
      message: `invalid parameters for tool ${tool.name}: ${describeIssues(params.error)}`,
      sideEffectId: null,
    }
  }
  let raw: unknown
  try {
    raw = await tool.execute(params.data, ctx)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    if (ctx.abortSignal.aborted) {
      return { ok: false, errorCode: 'TOOL_TIMEOUT', message: `tool ${tool.name} was aborted: ${message}`, sideEffectId: null }
    }
    return { ok: false, errorCode: 'TOOL_EXECUTION_ERROR', message: `tool ${tool.name} failed: ${message}`, sideEffectId: null }
  }
  const sideEffectId = tool.sideEffect ? sideEffectIdOf(raw) : null
  const result = tool.result.safeParse(raw)
  if (!result.success) {
    return {
      ok: false,
      errorCode: 'TOOL_RESPONSE_MALFORMED',
      message: `tool ${tool.name} returned a malformed response: ${describeIssues(result.error)}`,
      sideEffectId,
    }
  }
  return { ok: true, result: result.data, sideEffectId }
}
