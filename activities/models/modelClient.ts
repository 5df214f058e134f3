import type { LanguageModelV4 } from '@ai-sdk/provider'
import { APICallError } from '@ai-sdk/provider'
import { generateText } from 'ai'
import { z } from 'zod'
import type { ModelRef, ModelUsage } from '../../historian/events/common'
import { ModelCallError } from './modelErrors'

/** The three model roles of the pipeline. */
export const ModelRole = { routing: 'routing', planning: 'planning', synthesis: 'synthesis' } as const
export type ModelRole = (typeof ModelRole)[keyof typeof ModelRole]

/** All model roles, in pipeline order. */
export const MODEL_ROLES: readonly ModelRole[] = [ModelRole.routing, ModelRole.planning, ModelRole.synthesis]

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
  abortSignal?: AbortSignal
}

/** A rendered prompt: system text plus user prompt. */
export interface RenderedPrompt {
  system: string
  prompt: string
}

/** What one successful model call produced and cost. */
export interface ModelCallResult {
  text: string
  modelRef: ModelRef
  usage: ModelUsage
  latencyMs: number
}

/** The cost of a call in US dollars, rounded to 1e-10 so repeated sums stay stable. */
export function modelCostUsd(pricing: ModelPricing, inputTokens: number, outputTokens: number): number {
  const cost = (inputTokens * pricing.inputUsdPerMTok + outputTokens * pricing.outputUsdPerMTok) / 1_000_000
  return Math.round(cost * 1e10) / 1e10
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

/** Calls the model of each role through the AI SDK, with a per-role timeout, and maps failures to ModelCallError. */
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
        throw new ModelCallError('MODEL_PROVIDER_ERROR', `${role} model ${configured.provider}/${configured.modelId} cannot be replaced by ${modelId}`, { retryable: false, latencyMs: 0 })
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
   * Calls the role's model once (or the model named `modelId` in the role's provider, for a run that overrides it): no
   * SDK retries (Temporal owns retries), bounded by the role's timeout and the caller's signal.
   */
  async call(role: ModelRole, rendered: RenderedPrompt, ctx: ModelCallContext, modelId?: string): Promise<ModelCallResult> {
    const roleModel = this.roleModel(role, modelId)
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
    }
    try {
      const result = await generateText({
        model: roleModel.model,
        system: rendered.system,
        prompt: rendered.prompt,
        abortSignal,
        maxRetries: 0,
        providerOptions: { [ANNALIST_PROVIDER_OPTIONS_KEY]: callOptions },
      })
      const latencyMs = Math.max(0, this.clock() - started)
      const inputTokens = result.usage.inputTokens ?? 0
      const outputTokens = result.usage.outputTokens ?? 0
      return {
        text: result.text,
        modelRef: {
          provider: roleModel.provider,
          modelId: roleModel.modelId,
          modelVersion: result.response.modelId || roleModel.modelId,
        },
        usage: { inputTokens, outputTokens, costUsd: modelCostUsd(roleModel.pricing, inputTokens, outputTokens) },
        latencyMs,
      }
    } catch (error) {
      throw this.toModelCallError(roleModel, error, Math.max(0, this.clock() - started), {
        timedOut: timeout.signal.aborted,
        callerAborted: ctx.abortSignal?.aborted ?? false,
      })
    } finally {
      clearTimeout(timer)
    }
  }

  private toModelCallError(
    roleModel: RoleModel,
    error: unknown,
    latencyMs: number,
    aborted: { timedOut: boolean; callerAborted: boolean },
  ): ModelCallError {
    const modelRef = { provider: roleModel.provider, modelId: roleModel.modelId, modelVersion: roleModel.modelId }
    const what = `${roleModel.role} model ${roleModel.provider}/${roleModel.modelId}`
    if (aborted.timedOut || aborted.callerAborted || isAbortLike(error)) {
      const why = aborted.timedOut ? `timed out after ${roleModel.timeoutMs} ms` : 'was aborted'
      return new ModelCallError('MODEL_TIMEOUT', `${what} ${why}`, { retryable: true, latencyMs, modelRef, cause: error })
    }
    if (APICallError.isInstance(error)) {
      if (isContextLengthError(error)) {
        return new ModelCallError('MODEL_CONTEXT_LENGTH_EXCEEDED', `${what}: prompt exceeds the context window: ${error.message}`, {
          retryable: false,
          latencyMs,
          modelRef,
          cause: error,
        })
      }
      const status = error.statusCode === undefined ? 'no HTTP status' : `HTTP ${error.statusCode}`
      return new ModelCallError('MODEL_PROVIDER_ERROR', `${what} failed (${status}): ${error.message}`, {
        retryable: error.isRetryable,
        latencyMs,
        modelRef,
        cause: error,
      })
    }
    const message = error instanceof Error ? error.message : String(error)
    return new ModelCallError('MODEL_PROVIDER_ERROR', `${what} failed: ${message}`, { retryable: false, latencyMs, modelRef, cause: error })
  }
}
