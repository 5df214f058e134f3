import { generateText, NoObjectGeneratedError, Output } from 'ai'
import { z } from 'zod'
import type { OutputDialect } from '../../historian/events/common'
import { ModelConfigError, type ModelConfig } from './modelsFromConfig'
import { openAICompatibleModel } from './openaiCompatible'
import { providerFailureSummary } from './providerFailure'

/**
 * The probe's schema: one field whose only allowed values the prompt contradicts. A server that enforces the schema
 * must answer one of them; one that only accepts it, or ignores it, answers what the prompt asked (or prose).
 */
const ProbeReply = z.strictObject({ color: z.enum(['red', 'green']) })
const PROBE_PROMPT = 'Reply with exactly this JSON and nothing else: {"color": "purple"}'
const PROBE_TIMEOUT_MS = 30_000

/** What one probe of one dialect found: enforced, or why not (in one line). */
export type ProbeResult = { readonly enforced: true } | { readonly enforced: false; readonly why: string }

/** The dialects `auto` tries, in order; plain prompting is the fallback when neither is enforced. */
const AUTO_ORDER: readonly Exclude<OutputDialect, 'prompt'>[] = ['json_schema', 'json_object']

/** Sends the probe in one dialect to one model, and tells whether the reply obeyed the schema over the prompt. */
export async function probeOutputDialect(settings: { baseURL: string; apiKey?: string }, modelId: string, dialect: Exclude<OutputDialect, 'prompt'>): Promise<ProbeResult> {
  const model = openAICompatibleModel({ ...settings, dialect }, modelId)
  try {
    const result = await generateText({
      model,
      prompt: PROBE_PROMPT,
      output: Output.object({ schema: ProbeReply }),
      maxOutputTokens: 16,
      maxRetries: 0,
      abortSignal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    })
    return ProbeReply.safeParse(result.output).success ? { enforced: true } : { enforced: false, why: 'the reply did not match the schema' }
  } catch (error) {
    if (NoObjectGeneratedError.isInstance(error)) return { enforced: false, why: 'the reply did not match the schema' }
    // The log line names the status and the provider's error code, never its words (providerFailure.ts).
    return { enforced: false, why: `the request failed (${providerFailureSummary(error)})` }
  }
}

/** A URL as logs may show it: without a user name or password it may carry. */
function withoutCredentials(url: string): string {
  const parsed = new URL(url)
  parsed.username = ''
  parsed.password = ''
  return parsed.toString().replace(/\/$/, '')
}

/** What the start-up probe settled on, for the log line and the worker's models. */
export interface ResolvedDialect {
  readonly dialect: OutputDialect
  /** One line for the log: which dialect was verified against which models, or why plain prompting is used. */
  readonly summary: string
}

/** Thrown when the configured structured-output dialect is not enforced by the endpoint (the probe's reply broke the schema). */
export class OutputDialectNotEnforcedError extends ModelConfigError {
  constructor(
    readonly dialect: OutputDialect,
    readonly modelId: string,
    readonly why: string,
  ) {
    super('ANNALIST_MODEL_OUTPUT_DIALECT', `${dialect} is not enforced by model ${modelId} (${why}); set it to auto, to another dialect, or to prompt`)
    this.name = 'OutputDialectNotEnforcedError'
  }
}

/**
 * The structured-output dialect an openai-compatible configuration will use, checked against the endpoint: each model
 * of a structured role (routing, planning) is probed. `auto` takes the first dialect every such model enforces, else
 * plain prompting; a configured dialect that the probe shows unenforced is refused (OutputDialectNotEnforcedError);
 * `prompt` needs no probe. The scripted models need none either.
 */
export async function resolveOutputDialect(config: ModelConfig): Promise<ResolvedDialect> {
  if (config.provider === 'scripted') return { dialect: 'json_schema', summary: 'structured output: json_schema (scripted models, no probe)' }
  const models = [...new Set([config.models.routing, config.models.planning])]
  const settings = { baseURL: config.baseURL, ...(config.apiKey === undefined ? {} : { apiKey: config.apiKey }) }
  const verified = (dialect: OutputDialect) => ({ dialect, summary: `structured output: ${dialect}, verified by probe for ${models.join(', ')} at ${withoutCredentials(config.baseURL)}` })
  if (config.outputDialect === 'prompt') return { dialect: 'prompt', summary: 'structured output: plain prompting (configured), with tolerant extraction' }
  if (config.outputDialect !== 'auto') {
    for (const modelId of models) {
      const result = await probeOutputDialect(settings, modelId, config.outputDialect)
      if (!result.enforced) throw new OutputDialectNotEnforcedError(config.outputDialect, modelId, result.why)
    }
    return verified(config.outputDialect)
  }
  const refused: string[] = []
  for (const dialect of AUTO_ORDER) {
    const results = await Promise.all(models.map(async (modelId) => ({ modelId, result: await probeOutputDialect(settings, modelId, dialect) })))
    const failed = results.find(({ result }) => !result.enforced)
    if (!failed) return verified(dialect)
    refused.push(`${dialect}: ${(failed.result as { why: string }).why}`)
  }
  return { dialect: 'prompt', summary: `structured output: plain prompting with tolerant extraction, since the probe found no enforced dialect (${refused.join('; ')})` }
}
