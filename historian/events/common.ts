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

/** Token usage and cost of one model call. */
export const ModelUsage = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  costUsd: z.number().nonnegative(),
})
export type ModelUsage = z.infer<typeof ModelUsage>

/** Facts common to every successful model invocation event. */
export const ModelInvocation = z.object({
  model: ModelRef,
  prompt: PromptRef,
  responseText: z.string(),
  usage: ModelUsage,
  latencyMs: z.number().nonnegative(),
})
export type ModelInvocation = z.infer<typeof ModelInvocation>

/** How a model call failed, in the terms real providers fail. */
export const ModelErrorCode = z.enum(['MODEL_TIMEOUT', 'MODEL_OUTPUT_MALFORMED', 'MODEL_CONTEXT_LENGTH_EXCEEDED', 'MODEL_PROVIDER_ERROR'])
export type ModelErrorCode = z.infer<typeof ModelErrorCode>

/** Facts common to every failed model invocation event. */
export const ModelFailure = z.object({
  model: ModelRef,
  prompt: PromptRef,
  errorCode: ModelErrorCode,
  message: z.string(),
  willRetry: z.boolean(),
  latencyMs: z.number().nonnegative(),
})
export type ModelFailure = z.infer<typeof ModelFailure>
