import type { LanguageModelV4 } from '@ai-sdk/provider'
import { z } from 'zod'
import { OutputDialect } from '../../historian/events/common'
import { MODEL_ROLES, type ModelPricing, type ModelRole, type RoleModel } from './modelClient'
import { OPENAI_COMPATIBLE_PROVIDER, openAICompatibleModel } from './openaiCompatible'
import { withCallLedger } from './modelLedger'
import { SCRIPTED_PROVIDER, ScriptedModel } from './scriptedModel'

/** Price of a model in US dollars per million input and output tokens. */
export const ModelPricingSchema = z.strictObject({
  inputUsdPerMTok: z.number().nonnegative(),
  outputUsdPerMTok: z.number().nonnegative(),
})

/** Prices per role; a role without a price costs 0 (the scripted provider has its own simulated defaults). */
export const RolePricing = z.strictObject({
  routing: ModelPricingSchema.optional(),
  planning: ModelPricingSchema.optional(),
  synthesis: ModelPricingSchema.optional(),
})
export type RolePricing = z.infer<typeof RolePricing>

/**
 * Most tokens one reply of each role may have. Routing answers one short JSON value, planning a few tool calls, synthesis
 * a short answer; the limits keep a model that rambles from running until the call's timeout. The timeout stays the outer bound.
 */
export const MaxOutputTokens = z.strictObject({
  routing: z.number().int().positive().default(64),
  planning: z.number().int().positive().default(768),
  synthesis: z.number().int().positive().default(1024),
})
export type MaxOutputTokens = z.infer<typeof MaxOutputTokens>

/** How structured output is asked for: one of the dialects, or `auto`, which probes the endpoint at start-up (outputProbe.ts). */
export const OutputDialectSetting = z.enum(['auto', ...OutputDialect.options])
export type OutputDialectSetting = z.infer<typeof OutputDialectSetting>

/** Configuration of the deterministic, network-free scripted models (the embedded default). */
export const ScriptedModelConfig = z.strictObject({
  provider: z.literal('scripted'),
  latencyMs: z.number().int().nonnegative().default(0),
  ledgerPath: z.string().min(1).optional(),
  pricing: RolePricing.optional(),
  timeoutMs: z.number().int().positive().default(30_000),
  maxOutputTokens: MaxOutputTokens.prefault({}),
})

/** Configuration of models served by an OpenAI-compatible chat-completions endpoint. */
export const OpenAICompatibleModelConfig = z.strictObject({
  provider: z.literal('openai-compatible'),
  baseURL: z.url({ protocol: /^https?$/ }),
  apiKey: z.string().min(1).optional(),
  models: z.strictObject({ routing: z.string().min(1), planning: z.string().min(1), synthesis: z.string().min(1) }),
  pricing: RolePricing.optional(),
  timeoutMs: z.number().int().positive().default(60_000),
  maxOutputTokens: MaxOutputTokens.prefault({}),
  /** The structured-output dialect the endpoint speaks; `auto` (the default) probes it at worker start-up. */
  outputDialect: OutputDialectSetting.default('auto'),
  /** Where each call is recorded before its request leaves (the client-side call ledger); none when unset. */
  ledgerPath: z.string().min(1).optional(),
})

/** Which models play the routing, planning and synthesis roles. */
export const ModelConfig = z.discriminatedUnion('provider', [ScriptedModelConfig, OpenAICompatibleModelConfig])
export type ModelConfig = z.infer<typeof ModelConfig>
export type ModelConfigInput = z.input<typeof ModelConfig>

/** Thrown when model configuration is missing or invalid; `source` names the variable or setting. */
export class ModelConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problem: string,
  ) {
    super(`${source}: ${problem}`)
    this.name = 'ModelConfigError'
  }
}

/** Model ids of the scripted models by role. */
export const SCRIPTED_MODEL_IDS: Record<ModelRole, string> = {
  routing: 'scripted-router',
  planning: 'scripted-planner',
  synthesis: 'scripted-synthesizer',
}

/** Simulated prices of the scripted models, so cost accounting has something to add up. */
export const SCRIPTED_PRICING: Record<ModelRole, ModelPricing> = {
  routing: { inputUsdPerMTok: 0.15, outputUsdPerMTok: 0.6 },
  planning: { inputUsdPerMTok: 2.5, outputUsdPerMTok: 10 },
  synthesis: { inputUsdPerMTok: 0.5, outputUsdPerMTok: 1.5 },
}

const FREE: ModelPricing = { inputUsdPerMTok: 0, outputUsdPerMTok: 0 }

function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ')
}

/**
 * Builds the model of each role from a validated configuration. An openai-compatible configuration whose dialect is
 * `auto` needs the dialect the start-up probe settled on (`dialect`; see outputProbe.ts). The scripted models honour
 * every dialect, so they take the one configured, or `json_schema`.
 */
/** What a composition root adds to the configured models: the resolved output dialect, and a wrapper around every role's model. */
export interface ModelComposition {
  readonly dialect?: OutputDialect
  /** Wraps each role's language model (and every replay override of it); the demo, chaos and tests inject faults this way. */
  readonly wrapModel?: (model: LanguageModelV4, role: ModelRole) => LanguageModelV4
}

export function modelsFromConfig(input: ModelConfigInput, resolved: ModelComposition = {}): Record<ModelRole, RoleModel> {
  const parsed = ModelConfig.safeParse(input)
  if (!parsed.success) throw new ModelConfigError('model config', describeIssues(parsed.error))
  const config = parsed.data
  const dialect = resolved.dialect ?? (config.provider === 'scripted' ? 'json_schema' : config.outputDialect)
  if (dialect === 'auto') throw new ModelConfigError('ANNALIST_MODEL_OUTPUT_DIALECT', 'is auto: probe the endpoint (resolveOutputDialect) before building its models')
  const wrap = resolved.wrapModel ?? ((model: LanguageModelV4) => model)
  // Each role's model can be swapped for another name of the same provider (a replay's `--model ROLE=NAME`), same price.
  const roleModel = (role: ModelRole, modelId: string): RoleModel => {
    const common = { role, modelId, timeoutMs: config.timeoutMs, maxOutputTokens: config.maxOutputTokens[role], dialect, withModelId: (name: string) => roleModel(role, name) }
    if (config.provider === 'scripted') {
      const scripted = wrap(new ScriptedModel({ modelId, latencyMs: config.latencyMs }), role)
      const model = config.ledgerPath === undefined ? scripted : withCallLedger(scripted, config.ledgerPath)
      return { ...common, model, provider: SCRIPTED_PROVIDER, pricing: config.pricing?.[role] ?? SCRIPTED_PRICING[role] }
    }
    const model = wrap(
      openAICompatibleModel(
        { baseURL: config.baseURL, dialect, ...(config.apiKey === undefined ? {} : { apiKey: config.apiKey }), ...(config.ledgerPath === undefined ? {} : { ledgerPath: config.ledgerPath }) },
        modelId,
      ),
      role,
    )
    return { ...common, model, provider: OPENAI_COMPATIBLE_PROVIDER, pricing: config.pricing?.[role] ?? FREE }
  }
  const entries = MODEL_ROLES.map((role): [ModelRole, RoleModel] => [role, roleModel(role, config.provider === 'scripted' ? SCRIPTED_MODEL_IDS[role] : config.models[role])])
  return Object.fromEntries(entries) as Record<ModelRole, RoleModel>
}

function readVar<T>(env: NodeJS.ProcessEnv, name: string, schema: z.ZodType<T>): T {
  const raw = env[name]
  const parsed = schema.safeParse(raw === undefined || raw.trim() === '' ? undefined : raw.trim())
  if (!parsed.success) throw new ModelConfigError(name, parsed.error.issues.map((issue) => issue.message).join('; '))
  return parsed.data
}

const optionalInt = (min: number) => z.coerce.number().int().min(min).optional()

/** A variable holding JSON of `schema` (per-role settings); undefined when unset. */
function readJsonVar<T>(env: NodeJS.ProcessEnv, name: string, schema: z.ZodType<T>): T | undefined {
  const raw = env[name]?.trim()
  if (!raw) return undefined
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch (error) {
    throw new ModelConfigError(name, `not valid JSON (${(error as Error).message})`)
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new ModelConfigError(name, describeIssues(parsed.error))
  return parsed.data
}

const MaxOutputTokensInput = z.strictObject({
  routing: z.number().int().positive().optional(),
  planning: z.number().int().positive().optional(),
  synthesis: z.number().int().positive().optional(),
})

/**
 * Model configuration from the environment: `ANNALIST_MODEL_PROVIDER` (`scripted`, the default, or `openai-compatible`);
 * for openai-compatible `ANNALIST_OPENAI_BASE_URL`, `ANNALIST_OPENAI_API_KEY` (optional) and `ANNALIST_MODEL_ROUTING`,
 * `ANNALIST_MODEL_PLANNING`, `ANNALIST_MODEL_SYNTHESIS`; optionally `ANNALIST_MODEL_TIMEOUT_MS`, `ANNALIST_MODEL_PRICING`
 * (JSON, per role), `ANNALIST_MODEL_MAX_OUTPUT_TOKENS` (JSON, per role), `ANNALIST_MODEL_LEDGER`; for openai-compatible
 * also `ANNALIST_MODEL_OUTPUT_DIALECT`; for scripted also `ANNALIST_SCRIPTED_LATENCY_MS`.
 * Throws ModelConfigError naming the first missing or invalid variable.
 */
export function modelConfigFromEnv(env: NodeJS.ProcessEnv): ModelConfig {
  const provider = readVar(env, 'ANNALIST_MODEL_PROVIDER', z.enum(['scripted', 'openai-compatible']).default('scripted'))
  const timeoutMs = readVar(env, 'ANNALIST_MODEL_TIMEOUT_MS', optionalInt(1))
  const pricing = readJsonVar(env, 'ANNALIST_MODEL_PRICING', RolePricing)
  const maxOutputTokens = readJsonVar(env, 'ANNALIST_MODEL_MAX_OUTPUT_TOKENS', MaxOutputTokensInput)
  const ledgerPath = readVar(env, 'ANNALIST_MODEL_LEDGER', z.string().optional())
  const common = {
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(pricing === undefined ? {} : { pricing }),
    ...(maxOutputTokens === undefined ? {} : { maxOutputTokens }),
    ...(ledgerPath === undefined ? {} : { ledgerPath }),
  }
  if (provider === 'scripted') {
    const latencyMs = readVar(env, 'ANNALIST_SCRIPTED_LATENCY_MS', optionalInt(0))
    return ModelConfig.parse({
      provider,
      ...common,
      ...(latencyMs === undefined ? {} : { latencyMs }),
    })
  }
  const required = z.string({ error: 'is required when ANNALIST_MODEL_PROVIDER=openai-compatible' }).min(1)
  const baseURL = readVar(
    env,
    'ANNALIST_OPENAI_BASE_URL',
    required.pipe(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL such as http://127.0.0.1:8000/v1' })),
  )
  const apiKey = readVar(env, 'ANNALIST_OPENAI_API_KEY', z.string().optional())
  const outputDialect = readVar(env, 'ANNALIST_MODEL_OUTPUT_DIALECT', OutputDialectSetting.optional())
  const models = {
    routing: readVar(env, 'ANNALIST_MODEL_ROUTING', required),
    planning: readVar(env, 'ANNALIST_MODEL_PLANNING', required),
    synthesis: readVar(env, 'ANNALIST_MODEL_SYNTHESIS', required),
  }
  return ModelConfig.parse({ provider, baseURL, models, ...(apiKey === undefined ? {} : { apiKey }), ...(outputDialect === undefined ? {} : { outputDialect }), ...common })
}
