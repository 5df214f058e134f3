import type { z } from 'zod'
import type { ModelErrorCode, ModelRef } from '../../historian/events/common'

/**
 * Thrown when a model call fails: it timed out or was aborted, the prompt exceeded the context window, the provider
 * returned an error, or the reply could not be parsed. `retryable` says whether another attempt may succeed.
 */
export class ModelCallError extends Error {
  readonly code: ModelErrorCode
  readonly retryable: boolean
  readonly latencyMs: number
  /** The model that failed; null when the error came from parsing a reply (the caller holds the result's modelRef). */
  readonly modelRef: ModelRef | null

  constructor(
    code: ModelErrorCode,
    message: string,
    details: { retryable: boolean; latencyMs: number; modelRef?: ModelRef | null; cause?: unknown },
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'ModelCallError'
    this.code = code
    this.retryable = details.retryable
    this.latencyMs = details.latencyMs
    this.modelRef = details.modelRef ?? null
  }
}

/** Removes a Markdown code fence around a reply, which chat models often add even when asked for bare JSON. */
function stripCodeFence(text: string): string {
  const trimmed = text.trim()
  const fenced = /^```[a-zA-Z]*\s*\n([\s\S]*?)\n?```$/.exec(trimmed)
  return fenced?.[1]?.trim() ?? trimmed
}

/**
 * Parses a model reply as JSON and validates it with `schema`. Throws ModelCallError MODEL_OUTPUT_MALFORMED (retryable:
 * a resample may succeed) naming what was wrong.
 */
export function parseModelJson<T>(text: string, schema: z.ZodType<T>, latencyMs = 0): T {
  let value: unknown
  try {
    value = JSON.parse(stripCodeFence(text))
  } catch (error) {
    const preview = text.length > 120 ? `${text.slice(0, 120)}...` : text
    throw new ModelCallError('MODEL_OUTPUT_MALFORMED', `model reply is not valid JSON (${(error as Error).message}): ${JSON.stringify(preview)}`, {
      retryable: true,
      latencyMs,
      cause: error,
    })
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
    throw new ModelCallError('MODEL_OUTPUT_MALFORMED', `model reply does not match the expected shape: ${problems.join('; ')}`, {
      retryable: true,
      latencyMs,
      cause: parsed.error,
    })
  }
  return parsed.data
}
