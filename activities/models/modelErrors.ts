import type { z } from 'zod'
import type { ModelErrorCode, ModelRef, ModelUsage } from '../../historian/events/common'
import { readStructuredReply } from './structuredReply'

/** A reply that came back but could not be used: its text, and what the provider said about it. */
export interface FailedReply {
  readonly text: string
  readonly modelRef: ModelRef
  readonly usage: ModelUsage
  readonly finishReason: string | null
  readonly systemFingerprint: string | null
}

/** Usage of a call that never reached a model, or whose reply's usage the thrower does not hold. */
export const NO_USAGE: ModelUsage = { inputTokens: 0, outputTokens: 0, costUsd: 0, reported: false }

/**
 * Thrown when a model call fails: it timed out or was aborted, the prompt exceeded the context window, the provider
 * returned an error, or the reply could not be used (malformed, or truncated at the token limit). `retryable` says
 * whether another attempt may succeed; `usage` is what the call used, reported by the provider or estimated.
 */
export class ModelCallError extends Error {
  readonly code: ModelErrorCode
  readonly retryable: boolean
  readonly latencyMs: number
  /** The model that failed; null when the error came from parsing a reply (the caller holds the result's modelRef). */
  readonly modelRef: ModelRef | null
  readonly usage: ModelUsage
  /** The reply, for malformed and truncated replies (what a repair call quotes back); null when none came. */
  readonly reply: FailedReply | null
  /** What was wrong with the reply, in words that never quote it; null when there was no reply. */
  readonly problem: string | null

  constructor(
    code: ModelErrorCode,
    message: string,
    details: { retryable: boolean; latencyMs: number; usage?: ModelUsage; modelRef?: ModelRef | null; reply?: FailedReply; problem?: string; cause?: unknown },
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'ModelCallError'
    this.code = code
    this.retryable = details.retryable
    this.latencyMs = details.latencyMs
    this.modelRef = details.modelRef ?? null
    this.usage = details.usage ?? NO_USAGE
    this.reply = details.reply ?? null
    this.problem = details.problem ?? null
  }
}

/**
 * Reads a model reply's text as a value of `schema`, tolerantly (readStructuredReply). Throws ModelCallError
 * MODEL_OUTPUT_MALFORMED (retryable: a resample may succeed) naming what was wrong without quoting the reply.
 */
export function parseModelJson<T>(text: string, schema: z.ZodType<T>): T {
  const reading = readStructuredReply(text, schema)
  if (reading.ok) return reading.value
  throw new ModelCallError('MODEL_OUTPUT_MALFORMED', `model reply: ${reading.problem}`, {
    retryable: true,
    latencyMs: 0,
    problem: reading.problem,
  })
}
