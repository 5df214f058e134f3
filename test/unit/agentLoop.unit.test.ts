import { describe, expect, it } from 'vitest'
import { loopOptionsOf } from '../../cli/commands/start'
import { assertLoopOptions, InvalidLoopOptionsError } from '../../cli/runtime/loopOptions'
import { loopProgress, loopSummary, planIterationStep, renderLoopSynthesis } from '../../activities/loopModelSteps'
import { synthesisStep } from '../../activities/pipelineModelSteps'
import { loopPlanningPrompt, parseLoopPlanningReply, toolCallIdPrefix, type LoopPosition } from '../../activities/models/loopPrompts'
import { ModelCallError } from '../../activities/models/modelErrors'
import { ModelClient, type ModelCallContext } from '../../activities/models/modelClient'
import { modelsFromConfig } from '../../activities/models/modelsFromConfig'
import { readPromptValue } from '../../activities/models/prompts'
import { requestedToolCalls, scriptedLoopPlan } from '../../activities/models/scriptedLoop'
import { calculatorTool } from '../../activities/tools/calculator'
import { knowledgeBaseTool } from '../../activities/tools/knowledgeBase'
import { accountLookupTool } from '../../activities/tools/accountLookup'
import { ToolRegistry } from '../../activities/tools/registry'
import { CURRENT_SCHEMA_VERSION, type AnnalistEvent, type PlannedToolCall } from '../../historian/events'
import { foldTask, type TaskState } from '../../historian/taskState'

const TOOLS = new ToolRegistry([calculatorTool, knowledgeBaseTool, accountLookupTool])
const position = (iteration: number, maxIterations = 40, maxToolCalls = 8): LoopPosition => ({ iteration, maxIterations, maxToolCalls, toolCallIdPrefix: toolCallIdPrefix(iteration) })
const ctx: ModelCallContext = { tenantId: 'acme', taskId: 'loop-1', activityId: 'plan:1', attempt: 1 }

/** Events of a loop as the pipeline records them, with the Temporal run ID of each part (continue-as-new changes it). */
class LoopEvents {
  private n = 0
  readonly events: AnnalistEvent[] = []
  constructor(public runId = 'run-a') {}

  private add(type: AnnalistEvent['type'], activityId: string, data: unknown): void {
    const n = this.n++
    const metadata = {
      schemaVersion: CURRENT_SCHEMA_VERSION[type],
      tenantId: 'acme',
      taskId: 'loop-1',
      workflowId: 'agent-pipeline:acme:loop-1',
      runId: this.runId,
      activityId,
      attempt: 1,
      correlationId: 'agent-pipeline:acme:loop-1',
      causationId: null,
      occurredAt: new Date(Date.UTC(2026, 10, 22, 8, 0, n)).toISOString(),
      classification: 'internal' as const,
    }
    this.events.push({ type, data, metadata } as AnnalistEvent)
  }

  private invocation(templateId: string) {
    return {
      model: { provider: 'scripted', modelId: 'scripted-planner', modelVersion: 'scripted-planner-2026.11' },
      prompt: { templateId, templateVersion: '1.0.0', ref: `prompt-template://${templateId}@1.0.0`, sha256: 'a'.repeat(64) },
      responseText: '{}',
      usage: { inputTokens: 10, outputTokens: 5, costUsd: 0.001, reported: true },
      latencyMs: 1,
      finishReason: 'stop',
      systemFingerprint: null,
      callIndex: 0,
      structuredOutput: null,
    }
  }

  start(input = 'Run 20 checks over the ledger'): this {
    this.add('AgentTaskReceived', 'receive', { input, inputSha256: 'b'.repeat(64), requestedBy: 'test' })
    this.add('RoutingModelInvoked', 'route', { ...this.invocation('route-task'), route: 'calculation', candidateRoutes: ['calculation', 'general'] })
    return this
  }

  iteration(iteration: number, calls: PlannedToolCall[], done: boolean): this {
    this.add('PlanIterationCreated', `plan:${iteration}`, { ...this.invocation('plan-loop-iteration'), iteration, toolCalls: calls, done })
    return this
  }

  outcome(call: PlannedToolCall, ok = true): this {
    const facts = { toolCallId: call.toolCallId, toolName: call.toolName, parameters: call.parameters, idempotencyKey: `key-${call.toolCallId}`, sideEffectId: null, latencyMs: 1 }
    if (ok) this.add('ToolCallExecuted', `tool:${call.toolCallId}`, { ...facts, result: { expression: String(call.parameters.expression), value: 1 } })
    else this.add('ToolCallFailed', `tool:${call.toolCallId}`, { ...facts, errorCode: 'TOOL_FAILED', message: 'no' })
    return this
  }

  continued(iterationsDone: number, toolCallsDone: number, nextRunId: string): this {
    this.add('TaskRunContinued', `continue:${iterationsDone}`, { iterationsDone, toolCallsDone, historyLength: 300, historySizeBytes: 40_000, reason: 'history_threshold' })
    this.runId = nextRunId
    return this
  }
}

/** Plans iterations with the scripted planner and records every call as done, as the loop would; returns the fold. */
function runScriptedLoop(input: string, maxIterations: number, perIteration: number, failEvery = 0): { state: TaskState; events: LoopEvents } {
  const events = new LoopEvents().start(input)
  for (let iteration = 1; iteration <= maxIterations; iteration++) {
    const progress = loopProgress(foldTask(events.events))
    const reply = scriptedLoopPlan(input, TOOLS.list(), position(iteration, maxIterations, perIteration), progress)
    events.iteration(iteration, reply.toolCalls, reply.done)
    reply.toolCalls.forEach((call, index) => events.outcome(call, failEvery === 0 || (progress.toolCallsDone + index + 1) % failEvery !== 0))
    if (iteration % 5 === 0 && !reply.done) events.continued(iteration, progress.toolCallsDone + reply.toolCalls.length, `run-${iteration}`)
    if (reply.done) break
  }
  return { state: foldTask(events.events), events }
}

describe('the scripted loop planner', () => {
  it('plans the most calls an iteration allows, named i<iteration>-c<n>, with side-effect-free tools only, and says done at the last iteration', () => {
    const first = scriptedLoopPlan('Audit the ledger', TOOLS.list(), position(1, 3, 8), { toolCallsDone: 0 })
    expect(first.toolCalls.map((call) => call.toolCallId)).toEqual(['i1-c1', 'i1-c2', 'i1-c3', 'i1-c4', 'i1-c5', 'i1-c6', 'i1-c7', 'i1-c8'])
    expect(new Set(first.toolCalls.map((call) => call.toolName))).toEqual(new Set(['calculator', 'search_knowledge_base']))
    expect(first.toolCalls[0]).toEqual({ toolCallId: 'i1-c1', toolName: 'calculator', parameters: { expression: '1 * 1 + 1' } })
    expect(first.toolCalls[3]).toEqual({ toolCallId: 'i1-c4', toolName: 'search_knowledge_base', parameters: { query: 'notification channels' } })
    expect(first.done).toBe(false)
    expect(scriptedLoopPlan('Audit the ledger', TOOLS.list(), position(3, 3, 8), { toolCallsDone: 16 }).done).toBe(true)
    // Deterministic: the same inputs give the same plan.
    expect(scriptedLoopPlan('Audit the ledger', TOOLS.list(), position(1, 3, 8), { toolCallsDone: 0 })).toEqual(first)
  })

  it('stops once the task has the number of calls it asked for, asking only for those still missing', () => {
    expect(requestedToolCalls('Run 20 checks over the ledger')).toBe(20)
    expect(requestedToolCalls('Audit the ledger')).toBeUndefined()
    const last = scriptedLoopPlan('Run 20 checks over the ledger', TOOLS.list(), position(3, 40, 8), { toolCallsDone: 16 })
    expect(last.toolCalls.map((call) => call.toolCallId)).toEqual(['i3-c1', 'i3-c2', 'i3-c3', 'i3-c4'])
    expect(last.done).toBe(true)
  })

  it('plans nothing and says done when neither the calculator nor the knowledge base is offered', () => {
    const reply = scriptedLoopPlan('Audit the ledger', TOOLS.list().filter((tool) => tool.name === 'lookup_account'), position(1), { toolCallsDone: 0 })
    expect(reply).toEqual({ toolCalls: [], done: true })
  })

  it('answers the loop planning prompt through ModelClient and the AI SDK, reading progress from the prompt', async () => {
    const client = new ModelClient(modelsFromConfig({ provider: 'scripted' }))
    const vars = { input: 'Audit the ledger', route: 'calculation', tools: TOOLS.list(), loop: position(2, 10, 4), progress: { toolCallsDone: 4, succeeded: 4, failed: 0, recentResults: [] } }
    const rendered = loopPlanningPrompt.render(vars)
    expect(readPromptValue(rendered.prompt, 'Loop (JSON):')).toEqual(vars.loop)
    const reply = parseLoopPlanningReply((await client.call('planning', rendered, ctx)).text, vars.loop)
    expect(reply.toolCalls.map((call) => call.parameters)).toEqual([{ expression: '5 * 5 + 2' }, { expression: '6 * 6 + 2' }, { expression: '7 * 7 + 2' }, { query: 'account plans' }])
    expect(reply.done).toBe(false)
  })

  it('plans hundreds of calls over many iterations with IDs unique across iterations, then stops', () => {
    const { state } = runScriptedLoop('Audit the ledger', 40, 8)
    expect(state.toolCalls).toHaveLength(320)
    expect(new Set(state.toolCalls.map((call) => call.toolCallId)).size).toBe(320)
    expect(state).toMatchObject({ iterations: 40, loopDone: true, currentStep: 'synthesize' })
    expect(state.toolCalls.filter((call) => call.toolName === 'search_knowledge_base')).toHaveLength(80)
  })
})

describe('loop planner replies', () => {
  const call = (toolCallId: string) => ({ toolCallId, toolName: 'calculator', parameters: { expression: '1 + 1' } })
  const rejection = (reply: unknown, loop = position(2, 10, 2)) => {
    try {
      parseLoopPlanningReply(JSON.stringify(reply), loop)
    } catch (error) {
      return error
    }
    return undefined
  }

  it('are malformed (and retryable) when they ask for too many calls, misname them, repeat an ID or leave out done', () => {
    for (const reply of [
      { toolCalls: [call('i2-c1'), call('i2-c2'), call('i2-c3')], done: false },
      { toolCalls: [call('i1-c1')], done: false },
      { toolCalls: [call('t1')], done: false },
      { toolCalls: [call('i2-c1'), call('i2-c1')], done: false },
      { toolCalls: [call('i2-c1')] },
    ]) {
      const error = rejection(reply)
      expect(error, JSON.stringify(reply)).toBeInstanceOf(ModelCallError)
      expect(error).toMatchObject({ code: 'MODEL_OUTPUT_MALFORMED', retryable: true })
    }
    expect(rejection({ toolCalls: [call('i2-c1'), call('i2-c2')], done: true })).toBeUndefined()
  })
})

describe('folding a loop across continue-as-new', () => {
  it('accumulates tool calls over iterations, moves between plan and tools, and keeps the run that began the pipeline run', () => {
    const a = { toolCallId: 'i1-c1', toolName: 'calculator', parameters: { expression: '1 + 1' } }
    const b = { toolCallId: 'i1-c2', toolName: 'calculator', parameters: { expression: '2 + 2' } }
    const c = { toolCallId: 'i2-c1', toolName: 'calculator', parameters: { expression: '3 + 3' } }
    const events = new LoopEvents('run-a').start().iteration(1, [a, b], false)
    expect(foldTask(events.events)).toMatchObject({ currentStep: 'tools', iterations: 1, loopDone: false })
    events.outcome(a).outcome(b, false)
    expect(foldTask(events.events)).toMatchObject({ currentStep: 'plan', iterations: 1 })
    events.continued(1, 2, 'run-b').iteration(2, [c], true)
    let state = foldTask(events.events)
    expect(state).toMatchObject({ currentStep: 'tools', iterations: 2, loopDone: true, runId: 'run-a', runs: 1 })
    expect(state.toolCalls.map((call) => call.toolCallId)).toEqual(['i1-c1', 'i1-c2', 'i2-c1'])
    events.outcome(c)
    state = foldTask(events.events)
    expect(state.currentStep).toBe('synthesize')
    expect(loopProgress(state)).toMatchObject({ toolCallsDone: 3, succeeded: 2, failed: 1 })
    expect(loopSummary(state)).toEqual({ iterations: 2, toolCalls: 3, succeeded: 2, failed: 1, byTool: { calculator: { succeeded: 2, failed: 1 } } })
    // Tokens of every iteration count, whichever Temporal run recorded it.
    expect(state.totalTokens).toBe(3 * 15)
  })

  it('refuses to plan an iteration out of order or before the last one finished', () => {
    const a = { toolCallId: 'i1-c1', toolName: 'calculator', parameters: { expression: '1 + 1' } }
    const events = new LoopEvents().start().iteration(1, [a], false)
    const step = (iteration: number) => planIterationStep(TOOLS, position(iteration))
    expect(() => step(2).render(foldTask(events.events))).toThrow(/planned before tool calls i1-c1 had outcomes/)
    events.outcome(a)
    expect(() => step(3).render(foldTask(events.events))).toThrow(/loop iteration 3 cannot follow the 1 iterations recorded/)
    const rendered = step(2).render(foldTask(events.events))
    expect(rendered.promptRef).toMatchObject({ templateId: 'plan-loop-iteration', templateVersion: '1.0.0' })
  })
})

describe('synthesis of a long loop', () => {
  it('stays bounded with hundreds of results: counts and a few results from each end, and a bounded scripted answer', async () => {
    const { state } = runScriptedLoop('Audit the ledger', 40, 8, 50)
    expect(Object.keys(state.toolOutcomes)).toHaveLength(320)
    const rendered = renderLoopSynthesis(state)
    expect(rendered.promptRef.templateId).toBe('synthesize-loop-answer')
    expect(rendered.prompt.length).toBeLessThan(4_000)
    const sample = readPromptValue(rendered.prompt, 'Tool results sample (JSON):') as { toolCallId: string }[]
    expect(sample.map((result) => result.toolCallId)).toEqual(['i1-c1', 'i1-c2', 'i1-c3', 'i40-c6', 'i40-c7', 'i40-c8'])
    // The pipeline's synthesis step picks the loop prompt for a loop and the classic one otherwise.
    expect(synthesisStep.render(state).promptRef.templateId).toBe('synthesize-loop-answer')

    const client = new ModelClient(modelsFromConfig({ provider: 'scripted' }))
    const answer = (await client.call('synthesis', rendered, { ...ctx, activityId: 'synthesize' })).text
    expect(answer.split('\n')).toHaveLength(8)
    expect(answer).toContain('320 tool calls over 40 iterations, 314 succeeded and 6 failed (calculator 237 succeeded, 3 failed; search_knowledge_base 77 succeeded, 3 failed).')
    expect(answer).toContain('[i1-c1] calculator: 1 * 1 + 1 = 1.')
    expect(answer).toContain('(314 more results not shown.)')
  })
})

describe('start --loop-iterations', () => {
  it('validates the loop options before anything is sent', () => {
    expect(loopOptionsOf({})).toBeUndefined()
    expect(loopOptionsOf({ loopIterations: '30' })).toEqual({ maxIterations: 30 })
    expect(loopOptionsOf({ loopIterations: '30', callsPerIteration: '12' })).toEqual({ maxIterations: 30, toolCallsPerIteration: 12 })
    expect(() => loopOptionsOf({ loopIterations: '0' })).toThrow('--loop-iterations must be a whole number from 1 to 10000, got "0"')
    expect(() => loopOptionsOf({ loopIterations: '3', callsPerIteration: '65' })).toThrow('--calls-per-iteration must be a whole number from 1 to 64, got "65"')
    expect(() => loopOptionsOf({ callsPerIteration: '4' })).toThrow('--calls-per-iteration needs --loop-iterations')
  })
})

describe('assertLoopOptions (startPipeline)', () => {
  it('refuses loops out of range, naming the option', () => {
    expect(assertLoopOptions({ maxIterations: 1, toolCallsPerIteration: 64 })).toEqual({ maxIterations: 1, toolCallsPerIteration: 64 })
    expect(() => assertLoopOptions({ maxIterations: 0 })).toThrow(new InvalidLoopOptionsError('maxIterations', 0, 1, 10_000))
    expect(() => assertLoopOptions({ maxIterations: 2.5 })).toThrow('invalid loop option maxIterations: must be a whole number from 1 to 10000, got 2.5')
    expect(() => assertLoopOptions({ maxIterations: 3, toolCallsPerIteration: 65 })).toThrow('invalid loop option toolCallsPerIteration: must be a whole number from 1 to 64, got 65')
  })
})
