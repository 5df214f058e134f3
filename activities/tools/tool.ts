import type { z } from 'zod'
import type { ToolErrorCode } from '../../historian/events/tool'

/** Names of the built-in tools. */
export const ToolName = {
  calculator: 'calculator',
  searchKnowledgeBase: 'search_knowledge_base',
  sendNotification: 'send_notification',
  lookupAccount: 'lookup_account',
} as const
export type ToolName = (typeof ToolName)[keyof typeof ToolName]

/** What a tool knows about the call: whose task it is, its idempotency key, the attempt and the activity's cancellation signal. */
export interface ToolContext {
  tenantId: string
  taskId: string
  toolCallId: string
  /** Derived from the workflow run and activity, never from the attempt: side-effecting tools dedupe on it. */
  idempotencyKey: string
  attempt: number
  abortSignal: AbortSignal
}

/** What a tool's compensation knows: the original call as its ToolCallExecuted recorded it, and the compensation's own key. */
export interface CompensationContext {
  tenantId: string
  taskId: string
  toolCallId: string
  parameters: Record<string, unknown>
  /** The side effect to undo and the result the call returned, as recorded. */
  sideEffectId: string
  result: unknown
  /** The original call's idempotency key. */
  callIdempotencyKey: string
  /** The compensation's idempotency key (compensationIdempotencyKey): the tool must undo the side effect at most once per key. */
  idempotencyKey: string
  attempt: number
  abortSignal: AbortSignal
}

/**
 * A tool the planner may call. `parameters` validates the planner's arguments; `result` validates what `execute` returns
 * (an external API may answer anything, so the result is checked rather than trusted). Side-effecting tools return a
 * `sideEffectId` in their result and must dedupe on `ctx.idempotencyKey`. A side-effecting tool may offer `compensate`,
 * which undoes one recorded side effect when its task fails afterwards (saga style; activities/compensateToolCall.ts):
 * deduped on `ctx.idempotencyKey` like `execute`, it returns `compensationId`, naming what it did.
 */
export interface ToolDefinition<P, R> {
  name: string
  description: string
  parameters: z.ZodType<P>
  result: z.ZodType<R>
  sideEffect: boolean
  execute(params: P, ctx: ToolContext): Promise<unknown>
  compensate?(ctx: CompensationContext): Promise<{ compensationId: string }>
}

/** The outcome of one tool call; expected failures are values, not exceptions. */
export type ToolOutcome =
  | { ok: true; result: unknown; sideEffectId: string | null }
  | { ok: false; errorCode: ToolErrorCode; message: string; sideEffectId: string | null }

/** Identity helper that infers a tool's parameter and result types from its schemas. */
export function defineTool<P, R>(tool: ToolDefinition<P, R>): ToolDefinition<P, R> {
  return tool
}

/** An Error named AbortError describing why `signal` fired, for code that must stop when it is aborted. */
export function abortError(signal: AbortSignal, what: string): Error {
  const reason: unknown = signal.reason
  const error = new Error(`${what} was aborted${reason instanceof Error ? `: ${reason.message}` : ''}`, { cause: reason })
  error.name = 'AbortError'
  return error
}

/** Resolves after `ms`, or rejects with an AbortError as soon as `signal` fires. */
export function abortableDelay(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal, what))
      return
    }
    const onAbort = () => {
      clearTimeout(timer)
      reject(abortError(signal as AbortSignal, what))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Never resolves on its own: rejects with an AbortError when `signal` fires (a hung dependency). Without a signal it hangs. */
export function hangUntilAborted(signal: AbortSignal | undefined, what: string): Promise<never> {
  return new Promise((_resolve, reject) => {
    if (!signal) return
    if (signal.aborted) {
      reject(abortError(signal, what))
      return
    }
    signal.addEventListener('abort', () => reject(abortError(signal, what)), { once: true })
  })
}
