import { z } from 'zod'
import { FaultPlan, faultPlanFromEnv } from '../faults'
import { MODEL_ROLES, type ModelPricing, type ModelRole, type RoleModel } from './modelClient'
import { OPENAI_COMPATIBLE_PROVIDER, openAICompatibleModel } from './openaiCompatible'
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

/** Configuration of the deterministic, network-free scripted models (the embedded default). */
export const ScriptedModelConfig = z.strictObject({
  provider: z.literal('scripted'),
  latencyMs: z.number().int().nonnegative().default(0),
  faults: FaultPlan.optional(),
  ledgerPath: z.string().min(1).optional(),
  pricing: RolePricing.optional(),
  timeoutMs: z.number().int().positive().default(30_000),
})

/** Configuration of models served by an OpenAI-compatible chat-completions endpoint. */
export const OpenAICompatibleModelConfig = z.strictObject({
  provider: z.literal('openai-compatible'),
  baseURL: z.url({ protocol: /^https?$/ }),
  apiKey: z.string().min(1).optional(),
  models: z.strictObject({ routing: z.string().min(1), planning: z.string().min(1), synthesis: z.string().min(1) }),
  pricing: RolePricing.optional(),
  timeoutMs: z.number().int().positive().default(60_000),
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

/** Builds the model of each role from a validated configuration. */
export function modelsFromConfig(input: ModelConfigInput): Record<ModelRole, RoleModel> {
  const parsed = ModelConfig.safeParse(input)
  if (!parsed.success) throw new ModelConfigError('model config', describeIssues(parsed.error))
  const config = parsed.data
  // Each role's model can be swapped for another name of the same provider (a replay's `--model ROLE=NAME`), same price.
  const roleModel = (role: ModelRole, modelId: string): RoleModel => {
    if (config.provider === 'scripted') {
      const model = new ScriptedModel({
        modelId,
        latencyMs: config.latencyMs,
        ...(config.faults === undefined ? {} : { faults: config.faults }),
        ...(config.ledgerPath === undefined ? {} : { ledgerPath: config.ledgerPath }),
      })
      const pricing = config.pricing?.[role] ?? SCRIPTED_PRICING[role]
      return { role, model, provider: SCRIPTED_PROVIDER, modelId, pricing, timeoutMs: config.timeoutMs, withModelId: (name) => roleModel(role, name) }
    }
    const model = openAICompatibleModel({ baseURL: config.baseURL, ...(config.apiKey === undefined ? {} : { apiKey: config.apiKey }) }, modelId)
    const pricing = config.pricing?.[role] ?? FREE
    return { role, model, provider: OPENAI_COMPATIBLE_PROVIDER, modelId, pricing, timeoutMs: config.timeoutMs, withModelId: (name) => roleModel(role, name) }
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

function readPricing(env: NodeJS.ProcessEnv): RolePricing | undefined {
  const raw = env.ANNALIST_MODEL_PRICING?.trim()
  if (!raw) return undefined
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch (error) {
    throw new ModelConfigError('ANNALIST_MODEL_PRICING', `not valid JSON (${(error as Error).message})`)
  }
  const parsed = RolePricing.safeParse(value)
  if (!parsed.success) throw new ModelConfigError('ANNALIST_MODEL_PRICING', describeIssues(parsed.error))
  return parsed.data
}

/**
 * Model configuration from the environment: `ANNALIST_MODEL_PROVIDER` (`scripted`, the default, or `openai-compatible`);
 * for openai-compatible `ANNALIST_OPENAI_BASE_URL`, `ANNALIST_OPENAI_API_KEY` (optional) and `ANNALIST_MODEL_ROUTING`,
 * `ANNALIST_MODEL_PLANNING`, `ANNALIST_MODEL_SYNTHESIS`; optionally `ANNALIST_MODEL_TIMEOUT_MS`, `ANNALIST_MODEL_PRICING`
 * (JSON, per role); for scripted also `ANNALIST_SCRIPTED_LATENCY_MS`, `ANNALIST_MODEL_LEDGER` and `ANNALIST_FAULTS`.
 * Throws ModelConfigError naming the first missing or invalid variable.
 */
export function modelConfigFromEnv(env: NodeJS.ProcessEnv): ModelConfig {
  const provider = readVar(env, 'ANNALIST_MODEL_PROVIDER', z.enum(['scripted', 'openai-compatible']).default('scripted'))
  const timeoutMs = readVar(env, 'ANNALIST_MODEL_TIMEOUT_MS', optionalInt(1))
  const pricing = readPricing(env)
  const common = { ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(pricing === undefined ? {} : { pricing }) }
  if (provider === 'scripted') {
    const latencyMs = readVar(env, 'ANNALIST_SCRIPTED_LATENCY_MS', optionalInt(0))
    const ledgerPath = readVar(env, 'ANNALIST_MODEL_LEDGER', z.string().optional())
    const faults = faultPlanFromEnv(env)
    return ModelConfig.parse({
      provider,
      ...common,
      ...(latencyMs === undefined ? {} : { latencyMs }),
      ...(ledgerPath === undefined ? {} : { ledgerPath }),
      ...(faults.rules.length === 0 ? {} : { faults }),
    })
  }
  const required = z.string({ error: 'is required when ANNALIST_MODEL_PROVIDER=openai-compatible' }).min(1)
  const baseURL = readVar(
    env,
    'ANNALIST_OPENAI_BASE_URL',
    required.pipe(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL such as http://127.0.0.1:8000/v1' })),
  )
  const apiKey = readVar(env, 'ANNALIST_OPENAI_API_KEY', z.string().optional())
  const models = {
    routing: readVar(env, 'ANNALIST_MODEL_ROUTING', required),
    planning: readVar(env, 'ANNALIST_MODEL_PLANNING', required),
    synthesis: readVar(env, 'ANNALIST_MODEL_SYNTHESIS', required),
  }
  return ModelConfig.parse({ provider, baseURL, models, ...(apiKey === undefined ? {} : { apiKey }), ...common })
}
