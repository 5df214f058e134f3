import { createHash } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { z } from 'zod'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ModelCallContext, ModelClient, type RoleModel } from '../../activities/models/modelClient'
import { ModelCallError, parseModelJson } from '../../activities/models/modelErrors'
import { ModelConfigError, modelConfigFromEnv, modelsFromConfig } from '../../activities/models/modelsFromConfig'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import type { OutputDialect } from '../../historian/events'
import { promptRef, routingPrompt } from '../../activities/models/prompts'

interface RecordedRequest {
  url: string
  authorization: string | undefined
  headers: Record<string, string | string[] | undefined>
  body: Record<string, unknown>
}

/** A chat completion reply of the fake server. */
function completion(model: string, content: string, finishReason = 'stop') {
  return {
    id: 'chatcmpl-test-1',
    object: 'chat.completion',
    created: 1_790_000_000,
    model: `${model}-2026-01-15`,
    system_fingerprint: 'fp_test_42',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finishReason }],
    usage: { prompt_tokens: 1200, completion_tokens: 300, total_tokens: 1500 },
  }
}

/** A local server speaking non-streaming OpenAI chat completions; the model name picks the behaviour. */
class FakeOpenAIServer {
  readonly requests: RecordedRequest[] = []
  private server: Server | undefined

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res))
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve))
    const { port } = this.server.address() as AddressInfo
    return `http://127.0.0.1:${port}/v1`
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise<void>((resolve) => this.server?.close(() => resolve()))
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
    this.requests.push({ url: req.url ?? '', authorization: req.headers.authorization, headers: req.headers, body })
    const model = String(body.model)
    const json = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(payload))
    }
    switch (model) {
      case 'slow-model':
        return // never answers; the client must give up
      case 'small-context-model':
        return json(400, {
          error: {
            message: "This model's maximum context length is 4096 tokens. However, your messages resulted in 9000 tokens.",
            type: 'invalid_request_error',
            param: 'messages',
            code: 'context_length_exceeded',
          },
        })
      case 'vllm-small-context':
        return json(400, { object: 'error', message: "This model's maximum context length is 2048 tokens.", type: 'BadRequestError', code: 400 })
      case 'echoing-gateway':
        return json(500, { error: { message: `upstream failed for prompt: ${JSON.stringify(body.messages)}`, type: 'gateway error, see text', code: 'upstream_error' } })
      case 'overloaded-model':
        return json(503, { error: { message: 'server overloaded', type: 'server_error', code: null } })
      case 'rate-limited-model':
        return json(429, { error: { message: 'rate limit reached', type: 'rate_limit_error', code: 'rate_limit_exceeded' } })
      case 'forbidden-model':
        return json(401, { error: { message: 'invalid api key', type: 'invalid_request_error', code: 'invalid_api_key' } })
      case 'fenced-model':
        return json(200, completion(model, 'Here you go:\n```json\n{"route":"research"}\n```'))
      case 'prose-model':
        return json(200, completion(model, 'The route is research, I think.'))
      case 'truncated-model':
        return json(200, completion(model, '{"route":"resea', 'length'))
      default:
        return json(200, completion(model, '{"route":"research"}'))
    }
  }
}

const server = new FakeOpenAIServer()
let baseURL = ''
const ctx: ModelCallContext = { tenantId: 'acme', taskId: 'task-1', activityId: 'route', attempt: 1 }

beforeAll(async () => {
  baseURL = await server.start()
})
afterAll(async () => {
  await server.stop()
})

function clientFor(routingModel: string, timeoutMs = 5_000, options: { dialect?: OutputDialect; ledgerPath?: string } = {}): ModelClient {
  const models = modelsFromConfig(
    {
      provider: 'openai-compatible',
      baseURL,
      apiKey: 'sk-test-123',
      models: { routing: routingModel, planning: 'planner-model', synthesis: 'writer-model' },
      pricing: { routing: { inputUsdPerMTok: 2, outputUsdPerMTok: 8 } },
      timeoutMs,
      maxOutputTokens: { routing: 48 },
      ...(options.ledgerPath === undefined ? {} : { ledgerPath: options.ledgerPath }),
    },
    { dialect: options.dialect ?? 'json_schema' },
  )
  return new ModelClient(models)
}

const RouteSchema = z.object({ route: z.enum(['research', 'general']) })

async function failure(promise: Promise<unknown>): Promise<ModelCallError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(ModelCallError)
  return error as ModelCallError
}

function requestsFor(model: string): RecordedRequest[] {
  return server.requests.filter((request) => request.body.model === model)
}

describe('ModelClient against an OpenAI-compatible HTTP server', () => {
  it('sends the model name and prompt, and returns text, usage, cost and the reported model version', async () => {
    const rendered = routingPrompt.render({ input: 'Find our refund policy' })
    const result = await clientFor('router-model').call('routing', rendered, ctx)
    expect(result.text).toBe('{"route":"research"}')
    expect(routingPrompt.parseReply(result.text)).toEqual({ route: 'research' })
    expect(result.modelRef).toEqual({ provider: 'openai-compatible', modelId: 'router-model', modelVersion: 'router-model-2026-01-15' })
    expect(result.usage).toEqual({ inputTokens: 1200, outputTokens: 300, costUsd: (1200 * 2 + 300 * 8) / 1_000_000, reported: true })
    expect([result.finishReason, result.systemFingerprint]).toEqual(['stop', 'fp_test_42'])

    const [request] = requestsFor('router-model')
    expect(request?.url).toBe('/v1/chat/completions')
    expect(request?.authorization).toBe('Bearer sk-test-123')
    expect(request?.body.messages).toEqual([
      { role: 'system', content: rendered.system },
      { role: 'user', content: rendered.prompt },
    ])
    // Annalist's call context (tenant and task ids) must not leak into the provider request
    expect(JSON.stringify(request?.body)).not.toContain('acme')
    expect(request?.body).not.toHaveProperty('annalist')
    expect(JSON.stringify(request?.headers)).not.toContain('acme')
    expect(request?.body.max_tokens).toBe(48)
  })

  it('uses the per-role model names and zero cost when no price is configured', async () => {
    const result = await clientFor('router-model').call('planning', { system: 's', prompt: 'p' }, { ...ctx, activityId: 'plan' })
    expect(requestsFor('planner-model')).toHaveLength(1)
    expect(result.modelRef.modelId).toBe('planner-model')
    expect(result.usage.costUsd).toBe(0)
  })

  it('maps a 400 context_length_exceeded body to MODEL_CONTEXT_LENGTH_EXCEEDED, not retryable, with one request only', async () => {
    const error = await failure(clientFor('small-context-model').call('routing', { system: 's', prompt: 'p' }, ctx))
    expect(error.code).toBe('MODEL_CONTEXT_LENGTH_EXCEEDED')
    expect(error.retryable).toBe(false)
    expect(error.message).toMatch(/prompt exceeds the context window \(HTTP 400, provider code context_length_exceeded\)$/)
    expect(error.message).not.toMatch(/maximum context length/)
    expect(error.modelRef).toEqual({ provider: 'openai-compatible', modelId: 'small-context-model', modelVersion: 'small-context-model' })
    expect(requestsFor('small-context-model')).toHaveLength(1)
  })

  it('recognises a context-length 400 by its message when the server sends no code (vLLM style)', async () => {
    const error = await failure(clientFor('vllm-small-context').call('routing', { system: 's', prompt: 'p' }, ctx))
    expect(error.code).toBe('MODEL_CONTEXT_LENGTH_EXCEEDED')
    expect(error.retryable).toBe(false)
    expect(error.message).toMatch(/\(HTTP 400, provider code BadRequestError\)$/)
  })

  it('maps a server that does not answer in time to MODEL_TIMEOUT, retryable', async () => {
    const error = await failure(clientFor('slow-model', 150).call('routing', { system: 's', prompt: 'p' }, ctx))
    expect(error.code).toBe('MODEL_TIMEOUT')
    expect(error.retryable).toBe(true)
    expect(error.message).toMatch(/timed out after 150 ms/)
    expect(error.latencyMs).toBeGreaterThanOrEqual(140)
    expect(requestsFor('slow-model')).toHaveLength(1)
  })

  it('maps 503 and 429 to retryable MODEL_PROVIDER_ERROR and 401 to non-retryable, without SDK retries', async () => {
    const overloaded = await failure(clientFor('overloaded-model').call('routing', { system: 's', prompt: 'p' }, ctx))
    expect([overloaded.code, overloaded.retryable]).toEqual(['MODEL_PROVIDER_ERROR', true])
    expect(overloaded.message).toMatch(/failed \(HTTP 503, provider code server_error\)$/)
    expect(overloaded.message).not.toMatch(/server overloaded/)
    const limited = await failure(clientFor('rate-limited-model').call('routing', { system: 's', prompt: 'p' }, ctx))
    expect([limited.code, limited.retryable]).toEqual(['MODEL_PROVIDER_ERROR', true])
    const forbidden = await failure(clientFor('forbidden-model').call('routing', { system: 's', prompt: 'p' }, ctx))
    expect([forbidden.code, forbidden.retryable]).toEqual(['MODEL_PROVIDER_ERROR', false])
    expect(requestsFor('overloaded-model')).toHaveLength(1)
    expect(requestsFor('rate-limited-model')).toHaveLength(1)
  })

  it('records neither the prompt a gateway echoes in its error text nor the error text itself, nor keeps it as the cause', async () => {
    const error = await failure(clientFor('echoing-gateway').call('routing', { system: 's', prompt: 'Patient Jane Roe, born 1970-01-02' }, ctx))
    expect(error.code).toBe('MODEL_PROVIDER_ERROR')
    expect(error.message).toBe('routing model openai-compatible/echoing-gateway failed (HTTP 500, provider code upstream_error)')
    expect(error.cause).toBeUndefined()
  })

  it('maps a refused connection to a retryable MODEL_PROVIDER_ERROR', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const { port } = closed.address() as AddressInfo
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const models = modelsFromConfig({ provider: 'openai-compatible', baseURL: `http://127.0.0.1:${port}/v1`, models: { routing: 'a', planning: 'b', synthesis: 'c' } }, { dialect: 'json_schema' })
    const error = await failure(new ModelClient(models).call('routing', { system: 's', prompt: 'p' }, ctx))
    expect([error.code, error.retryable]).toEqual(['MODEL_PROVIDER_ERROR', true])
    expect(error.message).toMatch(/failed \(no HTTP response, ECONNREFUSED\)$/)
  })
})

const ENV_BASE = { ANNALIST_MODEL_PROVIDER: 'openai-compatible', ANNALIST_OPENAI_BASE_URL: 'http://127.0.0.1:8000/v1', ANNALIST_MODEL_ROUTING: 'a', ANNALIST_MODEL_PLANNING: 'b', ANNALIST_MODEL_SYNTHESIS: 'c' }

describe('structured output against an OpenAI-compatible HTTP server', () => {
  it('asks in each dialect as that dialect\'s servers expect: json_schema, json_object with the schema, or nothing', async () => {
    const rendered = { system: 's', prompt: 'p' }
    const schemaOf = (model: string) => requestsFor(model).at(-1)?.body.response_format
    await clientFor('router-model', 5_000, { dialect: 'json_schema' }).call('routing', rendered, ctx, { schema: RouteSchema })
    expect(schemaOf('router-model')).toMatchObject({ type: 'json_schema', json_schema: { schema: { properties: { route: { enum: ['research', 'general'] } } } } })
    await clientFor('router-model-2', 5_000, { dialect: 'json_object' }).call('routing', rendered, ctx, { schema: RouteSchema })
    expect(schemaOf('router-model-2')).toMatchObject({ type: 'json_object', schema: { properties: { route: { enum: ['research', 'general'] } } } })
    const plain = await clientFor('router-model-3', 5_000, { dialect: 'prompt' }).call('routing', rendered, ctx, { schema: RouteSchema })
    expect(requestsFor('router-model-3').at(-1)?.body).not.toHaveProperty('response_format')
    expect(plain.structured).toEqual({ value: { route: 'research' }, dialect: 'prompt', path: 'extracted' })
  })

  it('records which path produced the value: constrained as sent, or extracted from around the JSON', async () => {
    const constrained = await clientFor('router-model').call('routing', { system: 's', prompt: 'p' }, ctx, { schema: RouteSchema })
    expect(constrained.structured).toEqual({ value: { route: 'research' }, dialect: 'json_schema', path: 'constrained' })
    const extracted = await clientFor('fenced-model').call('routing', { system: 's', prompt: 'p' }, ctx, { schema: RouteSchema })
    expect(extracted.structured).toEqual({ value: { route: 'research' }, dialect: 'json_schema', path: 'extracted' })
  })

  it('calls an unusable reply malformed, and one cut off at the limit truncated, each with its usage and the reply', async () => {
    const malformed = await failure(clientFor('prose-model').call('routing', { system: 's', prompt: 'p' }, ctx, { schema: RouteSchema }))
    expect([malformed.code, malformed.retryable]).toEqual(['MODEL_OUTPUT_MALFORMED', true])
    expect(malformed.usage).toMatchObject({ inputTokens: 1200, outputTokens: 300, reported: true })
    expect(malformed.reply).toMatchObject({ text: 'The route is research, I think.', finishReason: 'stop', systemFingerprint: 'fp_test_42' })
    expect(malformed.message).not.toContain('research, I think')
    const truncated = await failure(clientFor('truncated-model').call('routing', { system: 's', prompt: 'p' }, ctx, { schema: RouteSchema }))
    expect(truncated.code).toBe('MODEL_OUTPUT_TRUNCATED')
    expect(truncated.message).toMatch(/cut off at the 48-token limit/)
    expect(truncated.reply?.finishReason).toBe('length')
  })

  it('estimates, and flags, the usage of a call the provider never answered', async () => {
    const error = await failure(clientFor('slow-model', 150).call('routing', { system: 'sys', prompt: 'x'.repeat(400) }, ctx))
    expect(error.usage.reported).toBe(false)
    expect(error.usage.inputTokens).toBeGreaterThanOrEqual(100)
    expect(error.usage.outputTokens).toBe(0)
  })

  it('writes the call ledger before the request leaves, and never sends the call context to the server', async () => {
    const ledgerPath = path.join(mkdtempSync(path.join(tmpdir(), 'annalist-ledger-')), 'calls.jsonl')
    await clientFor('ledgered-model', 5_000, { ledgerPath }).call('routing', { system: 's', prompt: 'p' }, { ...ctx, runId: 'run-1', callIndex: 2 })
    expect(readModelLedger(ledgerPath)).toEqual([expect.objectContaining({ tenantId: 'acme', taskId: 'task-1', role: 'routing', activityId: 'route', attempt: 1, runId: 'run-1', callIndex: 2, modelId: 'ledgered-model' })])
    const [request] = requestsFor('ledgered-model')
    expect(Object.keys(request?.headers ?? {}).filter((name) => name.startsWith('x-annalist'))).toEqual([])
  })
})

describe('model configuration from the environment', () => {
  it('defaults to the scripted provider and reads its options', () => {
    expect(modelConfigFromEnv({})).toMatchObject({ provider: 'scripted', latencyMs: 0, timeoutMs: 30_000 })
    const config = modelConfigFromEnv({
      ANNALIST_SCRIPTED_LATENCY_MS: '25',
      ANNALIST_MODEL_LEDGER: '/tmp/ledger.jsonl',
      ANNALIST_FAULTS: '{"rules":[{"target":"routing","kind":"timeout"}]}',
    })
    expect(config).toMatchObject({ provider: 'scripted', latencyMs: 25, ledgerPath: '/tmp/ledger.jsonl' })
    // Fault injection is no model setting: only the dev worker reads ANNALIST_FAULTS (dev/faults/).
    expect(config).not.toHaveProperty('faults')
  })

  it('reads the openai-compatible variables', () => {
    const config = modelConfigFromEnv({
      ANNALIST_MODEL_PROVIDER: 'openai-compatible',
      ANNALIST_OPENAI_BASE_URL: 'http://127.0.0.1:8000/v1',
      ANNALIST_OPENAI_API_KEY: 'sk-x',
      ANNALIST_MODEL_ROUTING: 'small',
      ANNALIST_MODEL_PLANNING: 'large',
      ANNALIST_MODEL_SYNTHESIS: 'medium',
      ANNALIST_MODEL_PRICING: '{"planning":{"inputUsdPerMTok":3,"outputUsdPerMTok":15}}',
    })
    expect(config).toEqual({
      provider: 'openai-compatible',
      baseURL: 'http://127.0.0.1:8000/v1',
      apiKey: 'sk-x',
      models: { routing: 'small', planning: 'large', synthesis: 'medium' },
      pricing: { planning: { inputUsdPerMTok: 3, outputUsdPerMTok: 15 } },
      timeoutMs: 60_000,
      maxOutputTokens: { routing: 64, planning: 768, synthesis: 1024 },
      outputDialect: 'auto',
    })
    expect(() => modelsFromConfig(config)).toThrow(/ANNALIST_MODEL_OUTPUT_DIALECT: is auto: probe the endpoint/)
    const models = modelsFromConfig(config, { dialect: 'json_object' })
    expect(models.routing.dialect).toBe('json_object')
    expect(modelConfigFromEnv({ ...ENV_BASE, ANNALIST_MODEL_OUTPUT_DIALECT: 'json_schema', ANNALIST_MODEL_MAX_OUTPUT_TOKENS: '{"routing":16}' })).toMatchObject({
      outputDialect: 'json_schema',
      maxOutputTokens: { routing: 16, planning: 768, synthesis: 1024 },
    })
    expect(models.planning.pricing).toEqual({ inputUsdPerMTok: 3, outputUsdPerMTok: 15 })
    expect((models.synthesis as RoleModel).modelId).toBe('medium')
  })

  it('names the missing or invalid variable', () => {
    const base = ENV_BASE
    const sourceOf = (env: NodeJS.ProcessEnv): string => {
      try {
        modelConfigFromEnv(env)
      } catch (error) {
        expect(error).toBeInstanceOf(ModelConfigError)
        return (error as ModelConfigError).source
      }
      return 'no error'
    }
    expect(sourceOf({ ANNALIST_MODEL_PROVIDER: 'gpt' })).toBe('ANNALIST_MODEL_PROVIDER')
    expect(sourceOf({ ...base, ANNALIST_OPENAI_BASE_URL: undefined })).toBe('ANNALIST_OPENAI_BASE_URL')
    expect(sourceOf({ ...base, ANNALIST_OPENAI_BASE_URL: 'not a url' })).toBe('ANNALIST_OPENAI_BASE_URL')
    expect(sourceOf({ ...base, ANNALIST_MODEL_PLANNING: '' })).toBe('ANNALIST_MODEL_PLANNING')
    expect(sourceOf({ ...base, ANNALIST_MODEL_TIMEOUT_MS: 'soon' })).toBe('ANNALIST_MODEL_TIMEOUT_MS')
    expect(sourceOf({ ...base, ANNALIST_MODEL_PRICING: '{"routing":{"inputUsdPerMTok":-1,"outputUsdPerMTok":1}}' })).toBe('ANNALIST_MODEL_PRICING')
    expect(sourceOf({ ANNALIST_SCRIPTED_LATENCY_MS: '-5' })).toBe('ANNALIST_SCRIPTED_LATENCY_MS')
    expect(sourceOf({ ...base, ANNALIST_MODEL_OUTPUT_DIALECT: 'xml' })).toBe('ANNALIST_MODEL_OUTPUT_DIALECT')
    expect(sourceOf({ ...base, ANNALIST_MODEL_MAX_OUTPUT_TOKENS: '{"routing":0}' })).toBe('ANNALIST_MODEL_MAX_OUTPUT_TOKENS')
    expect(sourceOf({ ...base, ANNALIST_MODEL_MAX_OUTPUT_TOKENS: '{"router":10}' })).toBe('ANNALIST_MODEL_MAX_OUTPUT_TOKENS')
    expect(sourceOf(base)).toBe('no error')
    expect(() => modelConfigFromEnv({ ...base, ANNALIST_MODEL_SYNTHESIS: undefined })).toThrow(/ANNALIST_MODEL_SYNTHESIS: is required when ANNALIST_MODEL_PROVIDER=openai-compatible/)
  })
})

describe('prompt references and reply parsing', () => {
  it('references the template version and hashes system + blank line + prompt', () => {
    const rendered = routingPrompt.render({ input: 'Find our refund policy' })
    const ref = promptRef(routingPrompt, rendered)
    const expected = createHash('sha256').update(`${rendered.system}\n\n${rendered.prompt}`).digest('hex')
    expect(ref).toEqual({ templateId: 'route-task', templateVersion: '1.0.0', ref: `prompt-template://route-task@1.0.0#sha256:${expected}`, sha256: expected })
    expect(promptRef(routingPrompt, routingPrompt.render({ input: 'Find our refund policy' }))).toEqual(ref)
    expect(promptRef(routingPrompt, routingPrompt.render({ input: 'Find our refund policy!' })).sha256).not.toBe(expected)
  })

  it('parses JSON replies, also inside a code fence, and rejects the rest as MODEL_OUTPUT_MALFORMED', () => {
    const schema = z.object({ route: z.enum(['research', 'general']) })
    expect(parseModelJson('```json\n{"route":"general"}\n```', schema)).toEqual({ route: 'general' })
    for (const [text, pattern] of [
      ['{"route": "resea', /holds no valid JSON object/],
      ['{"route":"shopping"}', /does not match the expected shape: route: Invalid option/],
      ['Sure! The route is research.', /holds no valid JSON object/],
    ] as const) {
      try {
        parseModelJson(text, schema)
        expect.unreachable('should have thrown')
      } catch (error) {
        expect(error).toBeInstanceOf(ModelCallError)
        expect((error as ModelCallError).code).toBe('MODEL_OUTPUT_MALFORMED')
        expect((error as ModelCallError).retryable).toBe(true)
        expect((error as ModelCallError).message).toMatch(pattern)
      }
    }
  })
})
