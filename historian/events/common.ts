import { z } from 'zod'

/** Which model decided: provider, model id and the provider-reported version. */
export const ModelRef = z.object({
  provider: z.string().min(1),
  modelId: z.string().min(1),
  modelVersion: z.string().min(1),
})
export type ModelRef = z.infer<typeof ModelRef>

/** A prompt as a reference plus a hash, with the template it was rendered from. */
export const PromptRef = z.object({
  templateId: z.string().min(1),
  templateVersion: z.string().min(1),
  ref: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
})
export type PromptRef = z.infer<typeof PromptRef>

/**
 * Token usage and cost of one model call (schema v2 of the model events adds `reported`). `reported: true`: the numbers
 * are what the provider reported, priced with the pricing table. `reported: false`: the provider reported nothing (a
 * timed-out or aborted call, a server that sends no usage); `inputTokens` is then an estimate from the prompt's length,
 * `outputTokens` 0, and `costUsd` the estimate's price, so a reader can count the call without mistaking it for a bill.
 */
export const ModelUsage = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  costUsd: z.number().nonnegative(),
  reported: z.boolean(),
})
export type ModelUsage = z.infer<typeof ModelUsage>

/**
 * How a model is asked for structured output: `json_schema` (response_format json_schema: OpenAI, vLLM, Ollama),
 * `json_object` (response_format json_object with a `schema`: llama-cpp-python), or `prompt` (the prompt asks for JSON).
 */
export const OutputDialect = z.enum(['json_schema', 'json_object', 'prompt'])
export type OutputDialect = z.infer<typeof OutputDialect>

/**
 * Where a structured value came from: `constrained` (the endpoint enforced the schema and the reply parsed as it came),
 * `extracted` (JSON found in the reply's text: a code fence, surrounding prose, or plain prompting), `repaired` (from the
 * step's one repair call, which re-asked with the validation error).
 */
export const StructuredOutputPath = z.enum(['constrained', 'extracted', 'repaired'])
export type StructuredOutputPath = z.infer<typeof StructuredOutputPath>

/** How a structured reply was asked for and obtained. */
export const StructuredOutput = z.object({ dialect: OutputDialect, path: StructuredOutputPath })
export type StructuredOutput = z.infer<typeof StructuredOutput>

/** What the provider said about a reply besides its text: why generation stopped, and its system fingerprint. */
const ReplyFacts = {
  /** The provider's finish reason as it sent it (`stop`, `length`, ...); null when there was no reply or it was not recorded. */
  finishReason: z.string().nullable(),
  /** The `system_fingerprint` the server reported, when it reports one. */
  systemFingerprint: z.string().nullable(),
  /** Which model call of this step's activity in this run this was: 0 for the first, counting recorded failed calls and repairs. */
  callIndex: z.number().int().nonnegative(),
}

/** Facts common to every successful model invocation event. */
export const ModelInvocation = z.object({
  model: ModelRef,
  prompt: PromptRef,
  responseText: z.string(),
  usage: ModelUsage,
  latencyMs: z.number().nonnegative(),
  ...ReplyFacts,
  /** For steps that ask for structure (routing, planning): the dialect and path that produced the value; null for text steps. */
  structuredOutput: StructuredOutput.nullable(),
})
export type ModelInvocation = z.infer<typeof ModelInvocation>

/** How a model call failed, in the terms real providers fail. */
export const ModelErrorCode = z.enum(['MODEL_TIMEOUT', 'MODEL_OUTPUT_MALFORMED', 'MODEL_OUTPUT_TRUNCATED', 'MODEL_CONTEXT_LENGTH_EXCEEDED', 'MODEL_PROVIDER_ERROR'])
export type ModelErrorCode = z.infer<typeof ModelErrorCode>

/** Facts common to every failed model invocation event. */
export const ModelFailure = z.object({
  model: ModelRef,
  prompt: PromptRef,
  errorCode: ModelErrorCode,
  /** What went wrong, in words that never quote the reply or the prompt. */
  message: z.string(),
  willRetry: z.boolean(),
  latencyMs: z.number().nonnegative(),
  /** What the call used, reported or estimated: a failed call costs money too. */
  usage: ModelUsage,
  ...ReplyFacts,
  /** The structured-output dialect the call used; null for text steps and events from before schema v2. */
  dialect: OutputDialect.nullable(),
  /** The reply that failed validation (malformed or truncated), kept so the repair call can quote it; null otherwise. */
  responseText: z.string().nullable(),
  /** True when this step's one repair call follows in the same attempt, re-asking with the validation error. */
  willRepair: z.boolean(),
  /** True when this call was the step's repair call. */
  isRepair: z.boolean(),
})
export type ModelFailure = z.infer<typeof ModelFailure>

/**
 * Upcaster of every successful model event to the version that adds `usage.reported`, the reply facts and
 * `structuredOutput`. Older events recorded what the provider reported (usage), but neither the finish reason, a
 * fingerprint, nor how structure was obtained: those read as unknown (null), and the call as the step's first.
 */
export function upcastModelInvocationToReplyFacts(data: Record<string, unknown>): Record<string, unknown> {
  const usage = (data.usage ?? {}) as Record<string, unknown>
  return { ...data, usage: { ...usage, reported: true }, finishReason: null, systemFingerprint: null, callIndex: 0, structuredOutput: null }
}

/**
 * Upcaster of every failed model event to the version that records usage and reply facts. Older failures recorded no
 * usage at all: it reads as not reported, with no estimate (the prompt's text was never stored, so none can be made).
 */
export function upcastModelFailureToReplyFacts(data: Record<string, unknown>): Record<string, unknown> {
  return {
    ...data,
    usage: { inputTokens: 0, outputTokens: 0, costUsd: 0, reported: false },
    finishReason: null,
    systemFingerprint: null,
    callIndex: 0,
    dialect: null,
    responseText: null,
    willRepair: false,
    isRepair: false,
  }
}
