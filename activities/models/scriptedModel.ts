import { createHash } from 'node:crypto'
import type {
  LanguageModelV4,
  LanguageModelV4CallOptions,
  LanguageModelV4GenerateResult,
  LanguageModelV4Prompt,
  LanguageModelV4StreamResult,
} from '@ai-sdk/provider'
import { UnsupportedFunctionalityError } from '@ai-sdk/provider'
import { abortableDelay, ToolName } from '../tools/tool'
import { ANNALIST_PROVIDER_OPTIONS_KEY, AnnalistCallOptions, type ModelRole } from './modelClient'
import { LoopPromptLabel, type LoopPosition, type LoopSummary } from './loopPrompts'
import { type PromptTool, PromptLabel, readPromptValue, Route, type SynthesisToolResult } from './prompts'
import { scriptedLoopPlan } from './scriptedLoop'

/** Options of the scripted model. */
export interface ScriptedModelOptions {
  /** Configured model id, e.g. `scripted-router`. */
  modelId: string
  /** Version suffix of the response model id, e.g. `2026.11` gives `scripted-router-2026.11`. */
  version?: string
  /** Simulated think time per call in ms; abortable. */
  latencyMs?: number
}

/** Provider name of the scripted model in model references. */
export const SCRIPTED_PROVIDER = 'scripted'

/** The reply cut to `maxTokens` by the scripted token count, as a real model stops at its output limit. */
function withinTokenLimit(reply: string, maxTokens: number | undefined): { text: string; truncated: boolean } {
  if (maxTokens === undefined || scriptedTokenCount(reply) <= maxTokens) return { text: reply, truncated: false }
  const words = reply.split(/(\s+)/)
  let text = ''
  for (const part of words) {
    if (scriptedTokenCount(text + part) > maxTokens) break
    text += part
  }
  // A reply of one long word (compact JSON has no spaces) is cut by characters: about four a token.
  if (text === '') text = reply.slice(0, maxTokens * 4)
  return { text, truncated: true }
}

/** Default version suffix of scripted models' response model ids. */
export const SCRIPTED_MODEL_VERSION = '2026.11'

/** Tokens of a text by the scripted model's deterministic count: words x 1.3, rounded up. */
export function scriptedTokenCount(text: string): number {
  const words = text.split(/\s+/).filter((word) => word.length > 0).length
  return Math.ceil(words * 1.3)
}

/** The route the scripted router picks for an input, from keywords. */
export function scriptedRoute(input: string): Route {
  const text = input.toLowerCase()
  if (/\b(notify|notification|alert|page|ping|remind)\b/.test(text)) return Route.notification
  if (/\b(account|acct|balance)\b/.test(text) || /\bacct[_-]?[a-z0-9]+/.test(text)) return Route.account
  if (/\b(calculate|compute|sum|total|multiply|divide|add|subtract)\b/.test(text) || extractExpression(input) !== undefined) {
    return Route.calculation
  }
  if (/\b(search|find|look up|lookup|research|what|which|how|why|explain|policy|docs?)\b/.test(text)) return Route.research
  return Route.general
}

/** The longest arithmetic expression in a text (digits, + - * / parentheses and decimals, at least one operator). */
export function extractExpression(input: string): string | undefined {
  const candidates = input.match(/[-+*/().\d\s]+/g) ?? []
  let best: string | undefined
  for (const raw of candidates) {
    const candidate = raw
      .trim()
      .replace(/^[+*/)\s]+/, '')
      .replace(/[-+*/(\s]+$/, '')
      .trim()
    if (!/\d\s*[-+*/]\s*[-(\d.]/.test(candidate)) continue
    if (!parenthesesBalanced(candidate)) continue
    if (best === undefined || candidate.length > best.length) best = candidate
  }
  return best
}

function parenthesesBalanced(text: string): boolean {
  let depth = 0
  for (const char of text) {
    if (char === '(') depth += 1
    if (char === ')') depth -= 1
    if (depth < 0) return false
  }
  return depth === 0
}

function extractAccountId(input: string): string {
  const direct = /\b(acct[_-]?[A-Za-z0-9]+)\b/i.exec(input)
  if (direct?.[1]) return direct[1]
  const named = /\baccount\s+(?:id\s+|number\s+|no\.?\s+)?#?([A-Za-z0-9_-]*\d[A-Za-z0-9_-]*)/i.exec(input)
  return named?.[1] ?? 'acct_default'
}

function notificationChannel(input: string): string {
  const text = input.toLowerCase()
  for (const channel of ['slack', 'sms', 'webhook', 'email']) {
    if (text.includes(channel)) return channel
  }
  return 'email'
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text
}

/** The tool calls the scripted planner asks for: 1-4 calls, only of tools the prompt lists. */
export function scriptedPlan(
  input: string,
  route: string,
  tools: readonly PromptTool[],
): { toolCallId: string; toolName: string; parameters: Record<string, unknown> }[] {
  const available = new Set(tools.map((tool) => tool.name))
  const expression = extractExpression(input)
  const wanted: { toolName: string; parameters: Record<string, unknown> }[] = []
  const search = { toolName: ToolName.searchKnowledgeBase, parameters: { query: truncate(input, 500) } }
  switch (route) {
    case Route.calculation:
      wanted.push({ toolName: ToolName.calculator, parameters: { expression: expression ?? calculationFromNumbers(input) } })
      break
    case Route.notification:
      wanted.push({
        toolName: ToolName.sendNotification,
        parameters: { channel: notificationChannel(input), message: truncate(`Annalist task update: ${input}`, 2000) },
      })
      break
    case Route.account:
      wanted.push({ toolName: ToolName.lookupAccount, parameters: { accountId: extractAccountId(input) } })
      break
    default:
      wanted.push(search)
  }
  if (route !== Route.calculation && expression !== undefined) wanted.push({ toolName: ToolName.calculator, parameters: { expression } })
  if (route === Route.notification || route === Route.account) wanted.push(search)
  return wanted
    .filter((call) => available.has(call.toolName))
    .slice(0, 4)
    .map((call, index) => ({ toolCallId: `t${index + 1}`, ...call }))
}

function calculationFromNumbers(input: string): string {
  const numbers = input.match(/\d+(?:\.\d+)?/g) ?? []
  return numbers.length > 0 ? numbers.join(' + ') : '0'
}

function summarizeResult(toolName: string, result: unknown): string {
  const value = (result ?? {}) as Record<string, unknown>
  if (toolName === ToolName.calculator && 'value' in value) return `${String(value.expression)} = ${String(value.value)}`
  if (toolName === ToolName.searchKnowledgeBase && Array.isArray(value.hits)) {
    const titles = value.hits.map((hit: { title?: unknown }) => String(hit.title))
    return titles.length > 0 ? `found ${titles.map((title) => `"${title}"`).join(', ')}` : 'found no matching documents'
  }
  if (toolName === ToolName.sendNotification && typeof value.sideEffectId === 'string') return `notification delivered (${value.sideEffectId})`
  if (toolName === ToolName.lookupAccount && typeof value.accountId === 'string') {
    return `account ${value.accountId} is ${String(value.status)} on the ${String(value.plan)} plan with balance ${String(value.balanceUsd)} USD`
  }
  return truncate(JSON.stringify(result), 160)
}

function resultSentence(result: SynthesisToolResult): string {
  return result.ok
    ? `[${result.toolCallId}] ${result.toolName}: ${summarizeResult(result.toolName, result.result)}.`
    : `[${result.toolCallId}] ${result.toolName} failed (${result.errorCode}).`
}

/** The scripted synthesizer's answer: one sentence per tool result, each citing its toolCallId. */
export function scriptedAnswer(input: string, route: string, results: readonly SynthesisToolResult[]): string {
  const lines = results.map(resultSentence)
  const head = `Answer to the ${route} task "${truncate(input, 80)}":`
  return lines.length > 0 ? [head, ...lines].join('\n') : `${head} no tool results were available.`
}

/** The scripted answer to a long loop: the counts, one sentence per sampled result, and how many results are not shown. */
export function scriptedLoopAnswer(input: string, route: string, summary: LoopSummary, sample: readonly SynthesisToolResult[]): string {
  const perTool = Object.entries(summary.byTool).map(([toolName, counts]) => `${toolName} ${counts.succeeded} succeeded, ${counts.failed} failed`)
  const head =
    `Answer to the ${route} task "${truncate(input, 80)}": ${summary.toolCalls} tool calls over ${summary.iterations} iterations, ` +
    `${summary.succeeded} succeeded and ${summary.failed} failed${perTool.length > 0 ? ` (${perTool.join('; ')})` : ''}.`
  const lines = sample.map(resultSentence)
  const hidden = summary.toolCalls - sample.length
  return [head, ...lines, ...(hidden > 0 ? [`(${hidden} more results not shown.)`] : [])].join('\n')
}

function promptTexts(prompt: LanguageModelV4Prompt): { system: string; user: string } {
  const system: string[] = []
  const user: string[] = []
  for (const message of prompt) {
    if (message.role === 'system') system.push(message.content)
    else if (message.role === 'user') {
      for (const part of message.content) if (part.type === 'text') user.push(part.text)
    }
  }
  return { system: system.join('\n'), user: user.join('\n') }
}

/**
 * A deterministic LanguageModelV4 with no network, the embedded default. Replies are a pure function of the prompt
 * text and the role in `providerOptions.annalist`. (The demo, chaos and tests make models time out, answer malformed
 * JSON or reject the prompt as too long by wrapping them: dev/faults/faultyModel.ts.)
 */
export class ScriptedModel implements LanguageModelV4 {
  readonly specificationVersion = 'v4' as const
  readonly provider = SCRIPTED_PROVIDER
  readonly modelId: string
  readonly supportedUrls: Record<string, RegExp[]> = {}
  private readonly options: ScriptedModelOptions

  constructor(options: ScriptedModelOptions) {
    this.modelId = options.modelId
    this.options = options
  }

  /** The model id this model reports in responses, e.g. `scripted-router-2026.11`. */
  get responseModelId(): string {
    return `${this.modelId}-${this.options.version ?? SCRIPTED_MODEL_VERSION}`
  }

  async doGenerate(options: LanguageModelV4CallOptions): Promise<LanguageModelV4GenerateResult> {
    const parsed = AnnalistCallOptions.safeParse(options.providerOptions?.[ANNALIST_PROVIDER_OPTIONS_KEY])
    if (!parsed.success) {
      throw new Error(`ScriptedModel needs providerOptions.${ANNALIST_PROVIDER_OPTIONS_KEY} {role, tenantId, taskId, activityId, attempt}: ${parsed.error.message}`)
    }
    const call = parsed.data
    const what = `scripted ${call.role} model call`
    if (this.options.latencyMs) await abortableDelay(this.options.latencyMs, options.abortSignal, what)

    const { system, user } = promptTexts(options.prompt)
    const reply = this.reply(call.role, user)
    const { text, truncated } = withinTokenLimit(reply, options.maxOutputTokens)
    const inputTokens = scriptedTokenCount(`${system}\n\n${user}`)
    const outputTokens = scriptedTokenCount(text)
    return {
      content: text.length > 0 ? [{ type: 'text', text }] : [],
      finishReason: truncated ? { unified: 'length', raw: 'length' } : { unified: 'stop', raw: 'stop' },
      usage: {
        inputTokens: { total: inputTokens, noCache: inputTokens, cacheRead: 0, cacheWrite: 0 },
        outputTokens: { total: outputTokens, text: outputTokens, reasoning: 0 },
      },
      response: {
        id: `scripted-${createHash('sha256').update(`${system}\n\n${user}`).digest('hex').slice(0, 24)}`,
        modelId: this.responseModelId,
      },
      warnings: [],
    }
  }

  doStream(_options: LanguageModelV4CallOptions): PromiseLike<LanguageModelV4StreamResult> {
    return Promise.reject(
      new UnsupportedFunctionalityError({
        functionality: 'streaming',
        message: 'ScriptedModel does not support streaming: Annalist calls models with generateText only',
      }),
    )
  }

  private reply(role: ModelRole, prompt: string): string {
    const input = readPromptValue(prompt, PromptLabel.task)
    const task = typeof input === 'string' ? input : ''
    const routeValue = readPromptValue(prompt, PromptLabel.route)
    const route = typeof routeValue === 'string' ? routeValue : Route.general
    if (role === 'routing') return JSON.stringify({ route: scriptedRoute(task) })
    if (role === 'planning') {
      const toolsValue = readPromptValue(prompt, PromptLabel.tools)
      const tools = Array.isArray(toolsValue) ? (toolsValue as PromptTool[]) : []
      const loop = readPromptValue(prompt, LoopPromptLabel.loop) as LoopPosition | undefined
      const progress = readPromptValue(prompt, LoopPromptLabel.progress) as { toolCallsDone: number } | undefined
      if (loop && progress) return JSON.stringify(scriptedLoopPlan(task, tools, loop, progress))
      return JSON.stringify({ toolCalls: scriptedPlan(task, route, tools) })
    }
    const summary = readPromptValue(prompt, LoopPromptLabel.summary) as LoopSummary | undefined
    const sample = readPromptValue(prompt, LoopPromptLabel.sample)
    if (summary && Array.isArray(sample)) return scriptedLoopAnswer(task, route, summary, sample as SynthesisToolResult[])
    const resultsValue = readPromptValue(prompt, PromptLabel.toolResults)
    const answer = scriptedAnswer(task, route, Array.isArray(resultsValue) ? (resultsValue as SynthesisToolResult[]) : [])
    // Synthesis prompt 1.1.0 asks for one bullet per result.
    return readPromptValue(prompt, PromptLabel.style) === 'bullets' ? answer.replace(/\n\[/g, '\n- [') : answer
  }
}
