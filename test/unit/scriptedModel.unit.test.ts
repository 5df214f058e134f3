import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { UnsupportedFunctionalityError } from '@ai-sdk/provider'
import { afterEach, describe, expect, it } from 'vitest'
import { type FaultPlan, parseFaultPlan } from '../../dev/faults/faultPlan'
import { withModelFaults } from '../../dev/faults/faultyModel'
import { type ModelCallContext, ModelClient, type ModelRole, type RoleModel } from '../../activities/models/modelClient'
import { ModelCallError } from '../../activities/models/modelErrors'
import { modelsFromConfig } from '../../activities/models/modelsFromConfig'
import { planningPrompt, routingPrompt, synthesisPrompt } from '../../activities/models/prompts'
import { extractExpression, ScriptedModel, scriptedTokenCount } from '../../activities/models/scriptedModel'
import { calculatorTool } from '../../activities/tools/calculator'
import { knowledgeBaseTool } from '../../activities/tools/knowledgeBase'
import { accountLookupTool } from '../../activities/tools/accountLookup'
import { ToolRegistry } from '../../activities/tools/registry'

const ctx: ModelCallContext = { tenantId: 'acme', taskId: 'task-1', activityId: 'route', attempt: 1 }
const TOOLS = [
  { name: 'calculator', description: 'Evaluates arithmetic. Parameters: {"expression": string}.' },
  { name: 'search_knowledge_base', description: 'Searches documents. Parameters: {"query": string}.' },
  { name: 'send_notification', description: 'Notifies. Parameters: {"channel": string, "message": string}.' },
  { name: 'lookup_account', description: 'Looks up an account. Parameters: {"accountId": string}.' },
]

const tempDirs: string[] = []
afterEach(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function scriptedClient({ faults, ...options }: { faults?: FaultPlan; latencyMs?: number; ledgerPath?: string; timeoutMs?: number } = {}): ModelClient {
  const models = modelsFromConfig({ provider: 'scripted', ...options }, faults ? { wrapModel: withModelFaults(faults) } : {})
  return new ModelClient(models)
}

async function route(client: ModelClient, input: string): Promise<string> {
  const result = await client.call('routing', routingPrompt.render({ input }), ctx)
  return routingPrompt.parseReply(result.text).route
}

async function expectModelError(promise: Promise<unknown>): Promise<ModelCallError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(ModelCallError)
  return error as ModelCallError
}

describe('ScriptedModel through ModelClient and the AI SDK', () => {
  it('routes by keywords in the input', async () => {
    const client = scriptedClient()
    expect(await route(client, 'Please calculate (12.5 + 7.5) * 4 for the invoice')).toBe('calculation')
    expect(await route(client, 'What is 17 * 3?')).toBe('calculation')
    expect(await route(client, 'Notify the on-call team on Slack that the deploy finished')).toBe('notification')
    expect(await route(client, 'Send an alert: disk almost full')).toBe('notification')
    expect(await route(client, 'Check the status of account acct_42')).toBe('account')
    expect(await route(client, 'Find our refund policy')).toBe('research')
    expect(await route(client, 'Hello there')).toBe('general')
  })

  it('is deterministic, reports a versioned model id and counts tokens as words x 1.3', async () => {
    const client = scriptedClient()
    const rendered = routingPrompt.render({ input: 'Find our refund policy' })
    const first = await client.call('routing', rendered, ctx)
    const second = await client.call('routing', rendered, { ...ctx, attempt: 2 })
    expect(second.text).toBe(first.text)
    expect(second.usage).toEqual(first.usage)
    expect(first.modelRef).toEqual({ provider: 'scripted', modelId: 'scripted-router', modelVersion: 'scripted-router-2026.11' })
    expect(first.usage.inputTokens).toBe(scriptedTokenCount(`${rendered.system}\n\n${rendered.prompt}`))
    expect(first.usage.outputTokens).toBe(scriptedTokenCount(first.text))
    const expectedCost = (first.usage.inputTokens * 0.15 + first.usage.outputTokens * 0.6) / 1_000_000
    expect(first.usage.costUsd).toBeCloseTo(expectedCost, 12)
    expect(first.usage.costUsd).toBeGreaterThan(0)
  })

  it('plans notification, account and calculation tasks with the matching tools, only from the listed tools', async () => {
    const client = scriptedClient()
    const plan = async (input: string, routeName: string, tools = TOOLS) => {
      const result = await client.call('planning', planningPrompt.render({ input, route: routeName, tools }), { ...ctx, activityId: 'plan' })
      return planningPrompt.parseReply(result.text).toolCalls
    }

    const notify = await plan('Notify the team by sms that 2 + 2 is done', 'notification')
    expect(notify[0]).toEqual({
      toolCallId: 't1',
      toolName: 'send_notification',
      parameters: { channel: 'sms', message: 'Annalist task update: Notify the team by sms that 2 + 2 is done' },
    })
    expect(notify.map((call) => call.toolName)).toContain('calculator')

    const account = await plan('What is the balance of account acct_9001?', 'account')
    expect(account[0]).toEqual({ toolCallId: 't1', toolName: 'lookup_account', parameters: { accountId: 'acct_9001' } })

    const calc = await plan('Calculate (12.5 + 7.5) * 4 please', 'calculation')
    expect(calc).toEqual([{ toolCallId: 't1', toolName: 'calculator', parameters: { expression: '(12.5 + 7.5) * 4' } }])

    for (const calls of [notify, account, calc]) {
      expect(calls.length).toBeGreaterThanOrEqual(1)
      expect(calls.length).toBeLessThanOrEqual(4)
    }

    const withoutNotifications = await plan('Notify the team', 'notification', TOOLS.filter((tool) => tool.name !== 'send_notification'))
    expect(withoutNotifications.map((call) => call.toolName)).not.toContain('send_notification')
  })

  it('plans with the tool names of the real registry', async () => {
    const registry = new ToolRegistry([calculatorTool, knowledgeBaseTool, accountLookupTool])
    const client = scriptedClient()
    const result = await client.call('planning', planningPrompt.render({ input: 'Find the password reset steps', route: 'research', tools: registry.list() }), ctx)
    const calls = planningPrompt.parseReply(result.text).toolCalls
    expect(calls).toEqual([{ toolCallId: 't1', toolName: 'search_knowledge_base', parameters: { query: 'Find the password reset steps' } }])
    expect(registry.get(calls[0]?.toolName ?? '')).toBeDefined()
  })

  it('synthesizes an answer that cites each tool result by its toolCallId', async () => {
    const client = scriptedClient()
    const rendered = synthesisPrompt.render({
      input: 'Calculate 6 * 7 and look up acct_1',
      route: 'calculation',
      toolResults: [
        { toolCallId: 't1', toolName: 'calculator', ok: true, result: { expression: '6 * 7', value: 42 } },
        { toolCallId: 't2', toolName: 'lookup_account', ok: false, errorCode: 'TOOL_RESPONSE_MALFORMED' },
      ],
    })
    const result = await client.call('synthesis', rendered, ctx)
    const answer = synthesisPrompt.parseReply(result.text)
    expect(answer).toContain('[t1] calculator: 6 * 7 = 42.')
    expect(answer).toContain('[t2] lookup_account failed (TOOL_RESPONSE_MALFORMED).')
    expect(result.modelRef.modelVersion).toBe('scripted-synthesizer-2026.11')
  })

  it('extracts the longest arithmetic expression from free text', () => {
    expect(extractExpression('Calculate (12.5 + 7.5) * 4 for me')).toBe('(12.5 + 7.5) * 4')
    expect(extractExpression('order 66 and 3 * (2 - 1) now')).toBe('3 * (2 - 1)')
    expect(extractExpression('nothing to compute, 42 only')).toBeUndefined()
  })

  it('times out on a timeout fault: never answers on its own, fails when the role timeout fires', async () => {
    const client = scriptedClient({ faults: parseFaultPlan({ rules: [{ target: 'routing', kind: 'timeout' }] }), timeoutMs: 50 })
    const error = await expectModelError(client.call('routing', routingPrompt.render({ input: 'hi' }), ctx))
    expect(error.code).toBe('MODEL_TIMEOUT')
    expect(error.retryable).toBe(true)
    expect(error.latencyMs).toBeGreaterThanOrEqual(45)
    expect(error.modelRef).toEqual({ provider: 'scripted', modelId: 'scripted-router', modelVersion: 'scripted-router' })
    // attempt 2 is not in the rule's attempts: the retry succeeds
    const retry = await client.call('routing', routingPrompt.render({ input: 'hi' }), { ...ctx, attempt: 2 })
    expect(routingPrompt.parseReply(retry.text).route).toBe('general')
  })

  it('aborts simulated think time when the caller aborts', async () => {
    const client = scriptedClient({ latencyMs: 60_000 })
    const controller = new AbortController()
    const pending = client.call('routing', routingPrompt.render({ input: 'hi' }), { ...ctx, abortSignal: controller.signal })
    controller.abort()
    const error = await expectModelError(pending)
    expect(error.code).toBe('MODEL_TIMEOUT')
    expect(error.message).toMatch(/aborted/)
  })

  it('answers malformed JSON on a malformed fault, which the prompt parser rejects as MODEL_OUTPUT_MALFORMED', async () => {
    const faults = parseFaultPlan({
      rules: [
        { target: 'planning', kind: 'malformed', tenantId: 'acme' },
        { target: 'synthesis', kind: 'malformed' },
      ],
    })
    const client = scriptedClient({ faults })
    const rendered = planningPrompt.render({ input: 'Calculate 1 + 1', route: 'calculation', tools: TOOLS })
    const bad = await client.call('planning', rendered, ctx)
    const error = (() => {
      try {
        planningPrompt.parseReply(bad.text)
      } catch (caught) {
        return caught
      }
      return undefined
    })()
    expect(error).toBeInstanceOf(ModelCallError)
    expect((error as ModelCallError).code).toBe('MODEL_OUTPUT_MALFORMED')
    expect((error as ModelCallError).retryable).toBe(true)
    // another tenant is not affected
    const good = await client.call('planning', rendered, { ...ctx, tenantId: 'globex' })
    expect(planningPrompt.parseReply(good.text).toolCalls[0]?.toolName).toBe('calculator')
    expect(bad.text).toBe(good.text.slice(0, Math.floor(good.text.length / 2)))

    const synthesis = await client.call('synthesis', synthesisPrompt.render({ input: 'x', route: 'general', toolResults: [] }), ctx)
    expect(() => synthesisPrompt.parseReply(synthesis.text)).toThrow(/empty answer/)
  })

  it('rejects the prompt as too long on a context_length fault: MODEL_CONTEXT_LENGTH_EXCEEDED, not retryable', async () => {
    const client = scriptedClient({ faults: parseFaultPlan({ rules: [{ target: 'synthesis', kind: 'context_length', attempts: [1, 2] }] }) })
    const rendered = synthesisPrompt.render({ input: 'x', route: 'general', toolResults: [] })
    const error = await expectModelError(client.call('synthesis', rendered, ctx))
    expect(error.code).toBe('MODEL_CONTEXT_LENGTH_EXCEEDED')
    expect(error.retryable).toBe(false)
    await expectModelError(client.call('synthesis', rendered, { ...ctx, attempt: 2 }))
    await expect(client.call('synthesis', rendered, { ...ctx, attempt: 3 })).resolves.toMatchObject({ modelRef: { modelId: 'scripted-synthesizer' } })
  })

  it('appends one ledger line per call start, including calls that then fail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'annalist-ledger-'))
    tempDirs.push(dir)
    const ledgerPath = join(dir, 'calls.jsonl')
    const client = scriptedClient({ ledgerPath, faults: parseFaultPlan({ rules: [{ target: 'routing', kind: 'context_length' }] }) })
    await expectModelError(client.call('routing', routingPrompt.render({ input: 'hi' }), { ...ctx, activityId: 'route-1' }))
    await client.call('routing', routingPrompt.render({ input: 'hi' }), { ...ctx, activityId: 'route-1', attempt: 2 })
    await client.call('planning', planningPrompt.render({ input: 'hi', route: 'general', tools: TOOLS }), { ...ctx, taskId: 'task-2', activityId: 'plan-1' })
    const lines = readFileSync(ledgerPath, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(lines.map(({ ts: _ts, ...rest }) => rest)).toEqual([
      { pid: process.pid, tenantId: 'acme', taskId: 'task-1', role: 'routing', activityId: 'route-1', attempt: 1, modelId: 'scripted-router' },
      { pid: process.pid, tenantId: 'acme', taskId: 'task-1', role: 'routing', activityId: 'route-1', attempt: 2, modelId: 'scripted-router' },
      { pid: process.pid, tenantId: 'acme', taskId: 'task-2', role: 'planning', activityId: 'plan-1', attempt: 1, modelId: 'scripted-planner' },
    ])
    for (const line of lines) expect(typeof line.ts).toBe('number')
  })

  it('refuses streaming and calls without Annalist call context', async () => {
    const model = new ScriptedModel({ modelId: 'scripted-router' })
    await expect(model.doStream({ prompt: [] })).rejects.toBeInstanceOf(UnsupportedFunctionalityError)
    await expect(model.doGenerate({ prompt: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] })).rejects.toThrow(/providerOptions\.annalist/)
  })

  it('builds all three roles from the scripted config', () => {
    const models = modelsFromConfig({ provider: 'scripted' })
    const roles: ModelRole[] = ['routing', 'planning', 'synthesis']
    const ids = roles.map((role) => (models[role] as RoleModel).modelId)
    expect(ids).toEqual(['scripted-router', 'scripted-planner', 'scripted-synthesizer'])
    for (const role of roles) expect(models[role].model.specificationVersion).toBe('v4')
  })
})
