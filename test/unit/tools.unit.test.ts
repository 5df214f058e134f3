import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { parseFaultPlan } from '../../dev/faults/faultPlan'
import { withToolFaults } from '../../dev/faults/faultyTools'
import { AccountRecord, accountLookupTool, simulatedAccount } from '../../activities/tools/accountLookup'
import { CalculatorError, calculatorTool, evaluateExpression } from '../../activities/tools/calculator'
import { knowledgeBaseTool, searchKnowledgeBase } from '../../activities/tools/knowledgeBase'
import { ToolRegistrationError, ToolRegistry } from '../../activities/tools/registry'
import { runTool } from '../../activities/tools/runTool'
import { defineTool, type ToolContext } from '../../activities/tools/tool'

function toolContext(overrides: Partial<ToolContext> = {}): ToolContext {
  return {
    tenantId: 'acme',
    taskId: 'task-1',
    toolCallId: 't1',
    idempotencyKey: 'key-1',
    attempt: 1,
    abortSignal: new AbortController().signal,
    ...overrides,
  }
}

/** A side-effecting tool whose "external API" answers with a sideEffectId but a wrong shape. */
const sloppySideEffect = defineTool({
  name: 'sloppy_side_effect',
  description: 'test tool',
  parameters: z.object({}),
  result: z.object({ sideEffectId: z.string(), count: z.number() }),
  sideEffect: true,
  execute: async () => ({ sideEffectId: 'outbox:77', count: 'many' }),
})

/** A tool that waits for the activity's signal, like a hung dependency. */
const hangingTool = defineTool({
  name: 'hanging',
  description: 'test tool',
  parameters: z.object({}),
  result: z.object({}),
  sideEffect: false,
  execute: (_params, ctx) =>
    new Promise((_resolve, reject) => ctx.abortSignal.addEventListener('abort', () => reject(new Error('socket closed')), { once: true })),
})

const registry = new ToolRegistry([
  calculatorTool,
  knowledgeBaseTool,
  // The account API answering garbage for tenant `faulty` (dev/faults/faultyTools.ts).
  ...withToolFaults(parseFaultPlan({ rules: [{ target: 'tool:lookup_account', kind: 'malformed', tenantId: 'faulty' }] }), () => undefined)(new ToolRegistry([accountLookupTool])).definitions(),
  sloppySideEffect,
  hangingTool,
])

describe('calculator', () => {
  it('evaluates + - * / with precedence, parentheses, unary minus and decimals', () => {
    expect(evaluateExpression('1 + 2 * 3')).toBe(7)
    expect(evaluateExpression('(1 + 2) * 3')).toBe(9)
    expect(evaluateExpression('(12.5 + 7.5) * 4')).toBe(80)
    expect(evaluateExpression('-3 - -2')).toBe(-1)
    expect(evaluateExpression('10 / 4')).toBe(2.5)
    expect(evaluateExpression('0.1 + 0.2')).toBe(0.3)
    expect(evaluateExpression('.5 * 8 - 2 / (1 + 1)')).toBe(3)
    expect(evaluateExpression('2 * (3 + (4 - 1)) / 3')).toBe(4)
  })

  it('refuses anything that is not arithmetic, without evaluating it', () => {
    expect(() => evaluateExpression('process.exit(1)')).toThrow(CalculatorError)
    expect(() => evaluateExpression('1 / 0')).toThrow(/division by zero/)
    expect(() => evaluateExpression('(1 + 2')).toThrow(/missing "\)"/)
    expect(() => evaluateExpression('1 + ')).toThrow(/unexpected end/)
    expect(() => evaluateExpression('1 2')).toThrow(/unexpected "2" at position 2/)
    expect(() => evaluateExpression('1..2')).toThrow(CalculatorError)
    expect(() => evaluateExpression('   ')).toThrow(/empty expression/)
  })

  it('runs as a tool', async () => {
    const outcome = await runTool(registry, { toolName: 'calculator', parameters: { expression: '6 * 7' } }, toolContext())
    expect(outcome).toEqual({ ok: true, result: { expression: '6 * 7', value: 42 }, sideEffectId: null })
  })
})

describe('search_knowledge_base', () => {
  it('returns the top 3 documents by keyword overlap, deterministically', async () => {
    const hits = searchKnowledgeBase('refund policy for a purchase payment')
    expect(hits[0]).toMatchObject({ id: 'kb-001', title: 'Refund policy', score: 4 })
    expect(searchKnowledgeBase('refund policy for a purchase payment')).toEqual(hits)
    expect(searchKnowledgeBase('notifications email sms slack webhook alerts').map((hit) => hit.id)[0]).toBe('kb-002')
    expect(searchKnowledgeBase('account tenant data email').length).toBe(3)
    expect(searchKnowledgeBase('zebra quantum')).toEqual([])

    const outcome = await runTool(registry, { toolName: 'search_knowledge_base', parameters: { query: 'How do I reset my password?' } }, toolContext())
    expect(outcome.ok).toBe(true)
    expect(outcome.ok && (outcome.result as { hits: { id: string }[] }).hits[0]?.id).toBe('kb-007')
  })
})

describe('lookup_account', () => {
  it('returns the same simulated account for the same id, and valid against its schema', async () => {
    const outcome = await runTool(registry, { toolName: 'lookup_account', parameters: { accountId: 'acct_42' } }, toolContext())
    expect(outcome).toEqual({ ok: true, result: simulatedAccount('acct_42'), sideEffectId: null })
    expect(AccountRecord.parse(simulatedAccount('acct_42')).accountId).toBe('acct_42')
    expect(simulatedAccount('acct_43')).not.toEqual(simulatedAccount('acct_42'))
  })

  it('answers a garbage balance under a malformed fault, which runTool reports as TOOL_RESPONSE_MALFORMED naming the field', async () => {
    const outcome = await runTool(registry, { toolName: 'lookup_account', parameters: { accountId: 'acct_42' } }, toolContext({ tenantId: 'faulty' }))
    expect(outcome.ok).toBe(false)
    expect(!outcome.ok && outcome.errorCode).toBe('TOOL_RESPONSE_MALFORMED')
    expect(!outcome.ok && outcome.message).toMatch(/lookup_account returned a malformed response: balanceUsd: .*expected number/)
    const retry = await runTool(registry, { toolName: 'lookup_account', parameters: { accountId: 'acct_42' } }, toolContext({ tenantId: 'faulty', attempt: 2 }))
    expect(retry.ok).toBe(true)
  })
})

describe('runTool error codes', () => {
  it('TOOL_UNKNOWN for a tool that is not registered', async () => {
    const outcome = await runTool(registry, { toolName: 'delete_everything', parameters: {} }, toolContext())
    expect(outcome).toMatchObject({ ok: false, errorCode: 'TOOL_UNKNOWN', sideEffectId: null })
    expect(!outcome.ok && outcome.message).toMatch(/unknown tool "delete_everything"; known tools: calculator, search_knowledge_base/)
  })

  it('TOOL_INVALID_PARAMETERS for parameters failing the schema, naming the field; the tool does not run', async () => {
    let ran = false
    const spy = defineTool({
      name: 'spy',
      description: 'test',
      parameters: z.object({ n: z.number() }),
      result: z.object({}),
      sideEffect: false,
      execute: async () => {
        ran = true
        return {}
      },
    })
    const outcome = await runTool(new ToolRegistry([spy]), { toolName: 'spy', parameters: { n: 'one' } }, toolContext())
    expect(outcome).toMatchObject({ ok: false, errorCode: 'TOOL_INVALID_PARAMETERS' })
    expect(!outcome.ok && outcome.message).toMatch(/invalid parameters for tool spy: n: /)
    expect(ran).toBe(false)
    const extra = await runTool(registry, { toolName: 'calculator', parameters: { expression: '1+1', eval: true } }, toolContext())
    expect(extra).toMatchObject({ ok: false, errorCode: 'TOOL_INVALID_PARAMETERS' })
  })

  it('TOOL_RESPONSE_MALFORMED keeps the sideEffectId of a side-effecting tool', async () => {
    const outcome = await runTool(registry, { toolName: 'sloppy_side_effect', parameters: {} }, toolContext())
    expect(outcome).toMatchObject({ ok: false, errorCode: 'TOOL_RESPONSE_MALFORMED', sideEffectId: 'outbox:77' })
    expect(!outcome.ok && outcome.message).toMatch(/count: /)
  })

  it('TOOL_EXECUTION_ERROR when the tool throws', async () => {
    const divide = await runTool(registry, { toolName: 'calculator', parameters: { expression: '1 / 0' } }, toolContext())
    expect(divide).toMatchObject({ ok: false, errorCode: 'TOOL_EXECUTION_ERROR', sideEffectId: null })
    expect(!divide.ok && divide.message).toMatch(/division by zero/)
    const missing = await runTool(registry, { toolName: 'lookup_account', parameters: { accountId: 'missing_7' } }, toolContext())
    expect(missing).toMatchObject({ ok: false, errorCode: 'TOOL_EXECUTION_ERROR', message: 'tool lookup_account failed: account missing_7 not found' })
  })

  it('TOOL_TIMEOUT when the tool fails after the activity signal fired', async () => {
    const controller = new AbortController()
    const pending = runTool(registry, { toolName: 'hanging', parameters: {} }, toolContext({ abortSignal: controller.signal }))
    controller.abort()
    expect(await pending).toMatchObject({ ok: false, errorCode: 'TOOL_TIMEOUT', sideEffectId: null })
  })
})

describe('ToolRegistry', () => {
  it('lists names and descriptions in registration order and rejects duplicates and bad names', () => {
    expect(registry.list().slice(0, 2).map((tool) => tool.name)).toEqual(['calculator', 'search_knowledge_base'])
    expect(registry.list()[0]?.description).toMatch(/"expression": string/)
    expect(() => new ToolRegistry([calculatorTool, calculatorTool])).toThrow(ToolRegistrationError)
    expect(() => new ToolRegistry([{ ...calculatorTool, name: 'Bad-Name' }])).toThrow(/must match/)
  })
})
