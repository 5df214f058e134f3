import type { LanguageModelV4 } from '@ai-sdk/provider'
import { APICallError } from '@ai-sdk/provider'
import { generateText, NoObjectGeneratedError, NoOutputGeneratedError, Output, type ModelMessage } from 'ai'
import { z } from 'zod'
import { ModelRole } from '../../historian/events/catalogue'
import type { ModelRef, ModelUsage, OutputDialect, StructuredOutputPath } from '../../historian/events/common'
import { ModelCallError, NO_USAGE, type FailedReply } from './modelErrors'
import { providerFailureSummary } from './providerFailure'
import { modelFacingSchema, readStructuredReply } from './structuredReply'

export { MODEL_ROLES, ModelRole } from '../../historian/events/catalogue'

/** Key under `providerOptions` that carries Annalist's call context to the model (read by the scripted model). */
export const ANNALIST_PROVIDER_OPTIONS_KEY = 'annalist'

/** The call context Annalist passes to every model under `providerOptions.annalist`. */
export const AnnalistCallOptions = z.object({
  role: z.enum([ModelRole.routing, ModelRole.planning, ModelRole.synthesis]),
  tenantId: z.string().min(1),
  taskId: z.string().min(1),
  activityId: z.string().min(1),
  attempt: z.number().int().positive(),
  /** The Temporal run of the calling activity: a replay calls again with the same activity ID in a new run. */
  runId: z.string().min(1).optional(),
  /** Which call of the step this is in its run (0 first; a repair or a retry after a recorded failure counts up). */
  callIndex: z.number().int().nonnegative().optional(),
})
export type AnnalistCallOptions = z.infer<typeof AnnalistCallOptions>

/** Price of a model in US dollars per million tokens. */
export interface ModelPricing {
  inputUsdPerMTok: number
  outputUsdPerMTok: number
}

/** The model that plays one role, with what Annalist records about it. */
export interface RoleModel {
  role: ModelRole
  model: LanguageModelV4
  provider: string
  modelId: string
  pricing: ModelPricing
  timeoutMs: number
  /** Most tokens one reply of this role may have: generation stops there (finish reason `length`). */
  maxOutputTokens: number
  /** How this role's model is asked for structured output (routing and planning; synthesis writes text). */
  dialect: OutputDialect
  /** The same provider and role with another model name, for a run that overrides the role's model; absent: no overrides. */
  withModelId?: (modelId: string) => RoleModel
}

/** Who is calling: the activity's tenant, task, activity and attempt, and the activity's cancellation signal. */
export interface ModelCallContext {
  tenantId: string
  taskId: string
  activityId: string
  attempt: number
  runId?: string
  /** Which call of the step this is in its run (0 first), for the call ledger. */
  callIndex?: number
  abortSignal?: AbortSignal
}

/** A rendered prompt: system text plus user prompt. */
export interface RenderedPrompt {
  system: string
  prompt: string
}

/** What a call asks beyond the prompt: a structured value of `schema`, a repair of an earlier reply, another model. */
export interface ModelCallOptions<T> {
  /** Ask for a value of this schema (in the role's dialect); without it the reply is text. */
  readonly schema?: z.ZodType<T>
  /** Re-ask after a reply that failed validation: the reply, and what was wrong with it. */
  readonly repair?: { readonly reply: string; readonly problem: string }
  /** A run's override of the role's model (another model name of the same provider). */
  readonly modelId?: string
}

/** The value of a structured call, and how it was obtained. */
export interface StructuredValue<T> {
  readonly value: T
  readonly dialect: OutputDialect
  readonly path: Exclude<StructuredOutputPath, 'repaired'>
}

/** What one successful model call produced and cost. */
export interface ModelCallResult<T = never> {
  text: string
  /** Present for calls with a schema. */
  structured?: StructuredValue<T>
  modelRef: ModelRef
  usage: ModelUsage
  latencyMs: number
  finishReason: string | null
  systemFingerprint: string | null
}

/** The cost of a call in US dollars, rounded to 1e-10 so repeated sums stay stable. */
export function modelCostUsd(pricing: ModelPricing, inputTokens: number, outputTokens: number): number {
  const cost = (inputTokens * pricing.inputUsdPerMTok + outputTokens * pricing.outputUsdPerMTok) / 1_000_000
  return Math.round(cost * 1e10) / 1e10
}

/** A rough token count of text a provider never reported on: four characters a token, the usual rule of thumb for English. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4)
}

/** True when an API error says the prompt did not fit the model's context window (OpenAI-compatible servers answer 400). */
export function isContextLengthError(error: APICallError): boolean {
  if (error.statusCode !== 400) return false
  const data = error.data as { error?: { code?: unknown } } | undefined
  if (data?.error?.code === 'context_length_exceeded') return true
  const text = `${error.message}\n${error.responseBody ?? ''}`
  return /context_length_exceeded|maximum context length|context length/i.test(text)
}

function isAbortLike(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError' || error.name === 'ResponseAborted')
}

/** Request header carrying the call context to the call ledger's fetch (openaiCompatible.ts), which removes it before sending. */
export const LEDGER_CONTEXT_HEADER = 'x-annalist-ledger-call'

/** What the provider said about a reply, from the SDK's result or error. */
interface ReplyMeta {
  readonly usage: { inputTokens?: number | undefined; outputTokens?: number | undefined } | undefined
  readonly finishReason: string | undefined
  readonly response: { modelId?: string; body?: unknown } | undefined
}

function systemFingerprintOf(body: unknown): string | null {
  const value = body !== null && typeof body === 'object' ? (body as { system_fingerprint?: unknown }).system_fingerprint : undefined
  return typeof value === 'string' && value !== '' ? value : null
}

/** Calls the model of each role through the AI SDK, with a per-role timeout and output bound, and maps failures to ModelCallError. */
export class ModelClient {
  readonly #overridden = new Map<string, RoleModel>()

  constructor(
    private readonly models: Record<ModelRole, RoleModel>,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * The model of a role: the configured one, or the role's model named `modelId` when a run overrides it. Throws
   * ModelCallError MODEL_OVERRIDE_UNSUPPORTED when the role's provider cannot switch models.
   */
  roleModel(role: ModelRole, modelId?: string): RoleModel {
    const configured = this.models[role]
    if (modelId === undefined || modelId === configured.modelId) return configured
    const key = `${role}:${modelId}`
    let model = this.#overridden.get(key)
    if (!model) {
      if (!configured.withModelId) {
        throw new ModelCallError('MODEL_PROVIDER_ERROR', `${role} model ${configured.provider}/${configured.modelId} cannot be replaced by ${modelId}`, {
          retryable: false,
          latencyMs: 0,
          usage: NO_USAGE,
        })
      }
      model = configured.withModelId(modelId)
      this.#overridden.set(key, model)
    }
    return model
  }

  /** The reference recorded for a role's model when no response reported a version (for failure events). */
  modelRef(role: ModelRole, modelId?: string): ModelRef {
    const { provider, modelId: id } = this.roleModel(role, modelId)
    return { provider, modelId: id, modelVersion: id }
  }

  /**
   * Calls the role's model once (or the model named `options.modelId` in the role's provider, for a run that overrides
   * it): no SDK retries (Temporal owns retries), bounded by the role's timeout, its output-token limit and the caller's
   * signal. With `options.schema` the reply must be a value of it, asked for in the role's dialect; a reply that is not
   * throws MODEL_OUTPUT_MALFORMED, or MODEL_OUTPUT_TRUNCATED when generation hit the token limit. Every error carries
   * the call's usage, reported or estimated.
   */
  async call<T = never>(role: ModelRole, rendered: RenderedPrompt, ctx: ModelCallContext, options: ModelCallOptions<T> = {}): Promise<ModelCallResult<T>> {
    const roleModel = this.roleModel(role, options.modelId)
    const started = this.clock()
    const timeout = new AbortController()
    const timer = setTimeout(() => {
      const reason = new Error(`model call exceeded ${roleModel.timeoutMs} ms`)
      reason.name = 'TimeoutError'
      timeout.abort(reason)
    }, roleModel.timeoutMs)
    const abortSignal = ctx.abortSignal ? AbortSignal.any([ctx.abortSignal, timeout.signal]) : timeout.signal
    const callOptions: AnnalistCallOptions = {
      role,
      tenantId: ctx.tenantId,
      taskId: ctx.taskId,
      activityId: ctx.activityId,
      attempt: ctx.attempt,
      ...(ctx.runId === undefined ? {} : { runId: ctx.runId }),
      ...(ctx.callIndex === undefined ? {} : { callIndex: ctx.callIndex }),
    }
    const schema = options.schema
    const constrained = schema !== undefined && roleModel.dialect !== 'prompt'
    const estimatedInput = estimateTokens(`${rendered.system}\n${rendered.prompt}${options.repair ? `\n${options.repair.reply}\n${options.repair.problem}` : ''}`)
    const latency = () => Math.max(0, this.clock() - started)
    try {
      const result = await generateText({
        model: roleModel.model,
        system: rendered.system,
        messages: messagesOf(rendered, options.repair),
        abortSignal,
        maxRetries: 0,
        maxOutputTokens: roleModel.maxOutputTokens,
        // The raw body carries what the SDK does not surface, such as `system_fingerprint`.
        include: { responseBody: true },
        headers: { [LEDGER_CONTEXT_HEADER]: JSON.stringify({ ...callOptions, modelId: roleModel.modelId }) },
        providerOptions: { [ANNALIST_PROVIDER_OPTIONS_KEY]: callOptions },
        ...(constrained ? { output: Output.object({ schema: modelFacingSchema(schema) }) } : {}),
      })
      const meta: ReplyMeta = { usage: result.usage, finishReason: result.rawFinishReason ?? result.finishReason, response: result.response }
      const reply = this.replyFacts(roleModel, meta, estimatedInput)
      if (schema === undefined) return { text: result.text, ...reply, latencyMs: latency() }
      const constrainedValue = constrained ? outputOf<T>(result) : undefined
      if (constrainedValue !== undefined) return { text: result.text, structured: { value: constrainedValue, dialect: roleModel.dialect, path: 'constrained' }, ...reply, latencyMs: latency() }
      return { text: result.text, structured: this.readReply(roleModel, result.text, schema, reply, latency()), ...reply, latencyMs: latency() }
    } catch (error) {
      if (schema !== undefined && NoObjectGeneratedError.isInstance(error)) {
        // The endpoint did not enforce the schema this time: look for the value in the text before calling it malformed.
        const reply = this.replyFacts(roleModel, { usage: error.usage, finishReason: error.finishReason, response: error.response }, estimatedInput)
        const text = error.text ?? ''
        return { text, structured: this.readReply(roleModel, text, schema, reply, latency()), ...reply, latencyMs: latency() }
      }
      if (error instanceof ModelCallError) throw error
      throw this.toModelCallError(roleModel, error, latency(), estimatedInput, {
        timedOut: timeout.signal.aborted,
        callerAborted: ctx.abortSignal?.aborted ?? false,
      })
    } finally {
      clearTimeout(timer)
    }
  }

  /** The value in a reply's text (extracted), or the malformed or truncated error that records the reply and its usage. */
  private readReply<T>(roleModel: RoleModel, text: string, schema: z.ZodType<T>, reply: Omit<FailedReply, 'text'>, latencyMs: number): StructuredValue<T> {
    const reading = readStructuredReply(text, schema)
    if (reading.ok) return { value: reading.value, dialect: roleModel.dialect, path: 'extracted' }
    const truncated = reply.finishReason === 'length'
    const what = `${roleModel.role} model ${roleModel.provider}/${roleModel.modelId}`
    const message = truncated ? `${what} reply was cut off at the ${roleModel.maxOutputTokens}-token limit: ${reading.problem}` : `${what}: ${reading.problem}`
    throw new ModelCallError(truncated ? 'MODEL_OUTPUT_TRUNCATED' : 'MODEL_OUTPUT_MALFORMED', message, {
      retryable: true,
      latencyMs,
      modelRef: reply.modelRef,
      usage: reply.usage,
      reply: { ...reply, text },
      problem: reading.problem,
    })
  }

  private replyFacts(roleModel: RoleModel, meta: ReplyMeta, estimatedInput: number): Omit<FailedReply, 'text'> {
    const reported = meta.usage?.inputTokens !== undefined || meta.usage?.outputTokens !== undefined
    const inputTokens = reported ? (meta.usage?.inputTokens ?? 0) : estimatedInput
    const outputTokens = reported ? (meta.usage?.outputTokens ?? 0) : 0
    return {
      modelRef: { provider: roleModel.provider, modelId: roleModel.modelId, modelVersion: meta.response?.modelId || roleModel.modelId },
      usage: { inputTokens, outputTokens, costUsd: modelCostUsd(roleModel.pricing, inputTokens, outputTokens), reported },
      finishReason: meta.finishReason ?? null,
      systemFingerprint: systemFingerprintOf(meta.response?.body),
    }
  }

  private toModelCallError(
    roleModel: RoleModel,
    error: unknown,
    latencyMs: number,
    estimatedInput: number,
    aborted: { timedOut: boolean; callerAborted: boolean },
  ): ModelCallError {
    const modelRef = { provider: roleModel.provider, modelId: roleModel.modelId, modelVersion: roleModel.modelId }
    // Nothing came back, so nothing was reported: the prompt's estimated size, flagged, is what the call is known to have cost.
    const usage: ModelUsage = { inputTokens: estimatedInput, outputTokens: 0, costUsd: modelCostUsd(roleModel.pricing, estimatedInput, 0), reported: false }
    const what = `${roleModel.role} model ${roleModel.provider}/${roleModel.modelId}`
    if (aborted.timedOut || aborted.callerAborted || isAbortLike(error)) {
      const why = aborted.timedOut ? `timed out after ${roleModel.timeoutMs} ms` : 'was aborted'
      return new ModelCallError('MODEL_TIMEOUT', `${what} ${why}`, { retryable: true, latencyMs, modelRef, usage, cause: error })
    }
    // The provider's words stay out: only its status and error code are recorded (providerFailureSummary), and the
    // SDK error carrying its text is not kept as the cause, so no log or failure chain prints it either.
    const summary = providerFailureSummary(error)
    if (APICallError.isInstance(error) && isContextLengthError(error)) {
      return new ModelCallError('MODEL_CONTEXT_LENGTH_EXCEEDED', `${what}: prompt exceeds the context window (${summary})`, { retryable: false, latencyMs, modelRef, usage })
    }
    const retryable = APICallError.isInstance(error) ? error.isRetryable : false
    return new ModelCallError('MODEL_PROVIDER_ERROR', `${what} failed (${summary})`, { retryable, latencyMs, modelRef, usage })
  }
}

/** The SDK's parsed output, or undefined when it parsed none (a reply cut off before any text). */
function outputOf<T>(result: { readonly output: unknown }): T | undefined {
  try {
    return result.output as T
  } catch (error) {
    if (NoOutputGeneratedError.isInstance(error)) return undefined
    throw error
  }
}

/** The conversation sent: the prompt, and for a repair the reply that failed plus what to fix. */
function messagesOf(rendered: RenderedPrompt, repair: ModelCallOptions<unknown>['repair']): ModelMessage[] {
  const messages: ModelMessage[] = [{ role: 'user', content: rendered.prompt }]
  if (!repair) return messages
  return [
    ...messages,
    { role: 'assistant', content: repair.reply },
    {
      role: 'user',
      content: `That reply cannot be used: ${repair.problem}. Reply again with only the JSON value the instructions ask for, with no prose and no code fence.`,
    },
  ]
}
