import { createHash } from 'node:crypto'
import { z } from 'zod'
import type { PromptRef } from '../../historian/events/common'
import { PlannedToolCall } from '../../historian/events/model'
import type { ModelRole, RenderedPrompt } from './modelClient'
import { ModelCallError, parseModelJson } from './modelErrors'

/** Routes the routing model may choose. */
export const Route = {
  research: 'research',
  calculation: 'calculation',
  notification: 'notification',
  account: 'account',
  general: 'general',
} as const
export type Route = (typeof Route)[keyof typeof Route]

/** The routing model's reply. */
export const RoutingReply = z.object({ route: z.enum([Route.research, Route.calculation, Route.notification, Route.account, Route.general]) })
export type RoutingReply = z.infer<typeof RoutingReply>

/** Most tool calls one plan may ask for. */
export const MAX_PLANNED_TOOL_CALLS = 8

/** The planning model's reply: up to eight tool calls with distinct ids. */
export const PlanningReply = z.object({
  toolCalls: z
    .array(PlannedToolCall)
    .max(MAX_PLANNED_TOOL_CALLS)
    .refine((calls) => new Set(calls.map((call) => call.toolCallId)).size === calls.length, 'toolCallIds must be distinct'),
})
export type PlanningReply = z.infer<typeof PlanningReply>

/** A tool the planner may use, as the planning prompt shows it. */
export interface PromptTool {
  name: string
  description: string
}

/** One tool outcome as the synthesis prompt shows it. */
export type SynthesisToolResult =
  | { toolCallId: string; toolName: string; ok: true; result: unknown }
  | { toolCallId: string; toolName: string; ok: false; errorCode: string }

export interface RoutingVars {
  input: string
}
export interface PlanningVars {
  input: string
  route: string
  tools: readonly PromptTool[]
}
export interface SynthesisVars {
  input: string
  route: string
  toolResults: readonly SynthesisToolResult[]
}

/** A versioned prompt template: rendering is pure, so the template version plus the recorded inputs reproduce the prompt. */
export interface PromptTemplate<Vars, Reply> {
  readonly templateId: string
  readonly templateVersion: string
  readonly system: string
  render(vars: Vars): RenderedPrompt
  /** Parses a reply; throws ModelCallError MODEL_OUTPUT_MALFORMED when it is not what the template asked for. */
  parseReply(text: string): Reply
}

/**
 * Labels of the machine-readable lines in rendered prompts. Every value after a label is single-line JSON, so the
 * prompt is unambiguous for a real model and parseable by the scripted one.
 */
export const PromptLabel = {
  task: 'Task (JSON string):',
  route: 'Route:',
  tools: 'Available tools (JSON):',
  toolResults: 'Tool results (JSON):',
  /** Synthesis 1.1.0 only: how the answer is laid out ("bullets"). */
  style: 'Answer style:',
} as const

const ROUTING_SYSTEM = [
  'You are the routing model of an agent pipeline. Classify the task into exactly one route:',
  '- research: the task needs facts from the knowledge base;',
  '- calculation: the task needs arithmetic;',
  '- notification: someone must be notified or alerted;',
  '- account: the task is about a customer account;',
  '- general: anything else.',
  'Reply with JSON only, no prose and no code fence: {"route":"<route>"}.',
].join('\n')

const PLANNING_SYSTEM = [
  'You are the planning model of an agent pipeline. Decide which tools to call to complete the task.',
  `Use only the available tools, at most ${MAX_PLANNED_TOOL_CALLS} calls, with the parameters their descriptions name.`,
  'Number the calls t1, t2, ... in order.',
  'Reply with JSON only, no prose and no code fence:',
  '{"toolCalls":[{"toolCallId":"t1","toolName":"<tool>","parameters":{}}]}',
].join('\n')

const SYNTHESIS_SYSTEM = [
  'You are the synthesis model of an agent pipeline. Write a short plain-text answer to the task using only the tool results.',
  'Cite each result you use by its toolCallId in square brackets, e.g. [t1]. Say plainly when a tool failed.',
].join('\n')

/** Routing prompt: classifies the task into a route. */
export const routingPrompt: PromptTemplate<RoutingVars, RoutingReply> = {
  templateId: 'route-task',
  templateVersion: '1.0.0',
  system: ROUTING_SYSTEM,
  render: ({ input }) => ({ system: ROUTING_SYSTEM, prompt: `${PromptLabel.task} ${JSON.stringify(input)}` }),
  parseReply: (text) => parseModelJson(text, RoutingReply),
}

/** Planning prompt: turns the task and its route into tool calls. */
export const planningPrompt: PromptTemplate<PlanningVars, PlanningReply> = {
  templateId: 'plan-tool-calls',
  templateVersion: '1.0.0',
  system: PLANNING_SYSTEM,
  render: ({ input, route, tools }) => ({
    system: PLANNING_SYSTEM,
    prompt: [
      `${PromptLabel.route} ${JSON.stringify(route)}`,
      `${PromptLabel.tools} ${JSON.stringify(tools.map(({ name, description }) => ({ name, description })))}`,
      `${PromptLabel.task} ${JSON.stringify(input)}`,
    ].join('\n'),
  }),
  parseReply: (text) => parseModelJson(text, PlanningReply),
}

/** Synthesis prompt: writes the answer from the tool results. */
export const synthesisPrompt: PromptTemplate<SynthesisVars, string> = {
  templateId: 'synthesize-answer',
  templateVersion: '1.0.0',
  system: SYNTHESIS_SYSTEM,
  render: ({ input, route, toolResults }) => ({
    system: SYNTHESIS_SYSTEM,
    prompt: [
      `${PromptLabel.route} ${JSON.stringify(route)}`,
      `${PromptLabel.toolResults} ${JSON.stringify(toolResults)}`,
      `${PromptLabel.task} ${JSON.stringify(input)}`,
    ].join('\n'),
  }),
  parseReply: (text) => {
    const answer = text.trim()
    if (answer.length === 0) {
      throw new ModelCallError('MODEL_OUTPUT_MALFORMED', 'synthesis model returned an empty answer', { retryable: true, latencyMs: 0 })
    }
    return answer
  },
}

const SYNTHESIS_SYSTEM_1_1 = [
  'You are the synthesis model of an agent pipeline. Write a short plain-text answer to the task using only the tool results.',
  'Start with one summary line, then one bullet ("- ") per tool result, citing it by its toolCallId in square brackets, e.g. [t1].',
  'Say plainly when a tool failed; never invent a result.',
].join('\n')

/** Synthesis prompt 1.1.0: the same inputs as 1.0.0, asking for a summary line and one bullet per tool result. */
export const synthesisPromptV1_1: PromptTemplate<SynthesisVars, string> = {
  templateId: 'synthesize-answer',
  templateVersion: '1.1.0',
  system: SYNTHESIS_SYSTEM_1_1,
  render: (vars) => {
    const base = synthesisPrompt.render(vars)
    return { system: SYNTHESIS_SYSTEM_1_1, prompt: `${PromptLabel.style} "bullets"\n${base.prompt}` }
  },
  parseReply: (text) => synthesisPrompt.parseReply(text),
}

/** The prompt-template versions of each model role; the first is the default. A run may pick another per role. */
export const PROMPT_TEMPLATES = {
  routing: [routingPrompt],
  planning: [planningPrompt],
  synthesis: [synthesisPrompt, synthesisPromptV1_1],
} as const satisfies Record<ModelRole, readonly PromptTemplate<never, unknown>[]>

/** Thrown when a run asks for a prompt-template version that the role does not have. */
export class UnknownPromptVersionError extends Error {
  constructor(
    readonly role: ModelRole,
    readonly version: string,
    readonly known: readonly string[],
  ) {
    super(`the ${role} prompt has no version ${JSON.stringify(version)}; known versions: ${known.join(', ')}`)
    this.name = 'UnknownPromptVersionError'
  }
}

/** The versions of a role's prompt template, default first. */
export function promptVersionsOf(role: ModelRole): string[] {
  return PROMPT_TEMPLATES[role].map((template) => template.templateVersion)
}

/** A role's prompt template at `version` (undefined: the default). Throws UnknownPromptVersionError. */
export function promptTemplateFor<R extends ModelRole>(role: R, version: string | undefined): (typeof PROMPT_TEMPLATES)[R][number] {
  const templates: readonly (typeof PROMPT_TEMPLATES)[R][number][] = PROMPT_TEMPLATES[role]
  if (version === undefined) return templates[0]!
  const found = templates.find((template) => template.templateVersion === version)
  if (!found) throw new UnknownPromptVersionError(role, version, promptVersionsOf(role))
  return found
}

/** SHA-256 (hex) of a rendered prompt: `system + "\n\n" + prompt`. */
export function renderedPromptSha256(rendered: RenderedPrompt): string {
  return createHash('sha256').update(`${rendered.system}\n\n${rendered.prompt}`, 'utf8').digest('hex')
}

/** The prompt as recorded in events: a reference to the template version plus the hash of what was sent. */
export function promptRef(template: Pick<PromptTemplate<unknown, unknown>, 'templateId' | 'templateVersion'>, rendered: RenderedPrompt): PromptRef {
  const sha256 = renderedPromptSha256(rendered)
  return {
    templateId: template.templateId,
    templateVersion: template.templateVersion,
    ref: `prompt-template://${template.templateId}@${template.templateVersion}#sha256:${sha256}`,
    sha256,
  }
}

/** Reads the JSON value after `label` in a rendered prompt, or undefined when the line is missing or unreadable. */
export function readPromptValue(prompt: string, label: string): unknown {
  const line = prompt.split('\n').find((candidate) => candidate.startsWith(label))
  if (line === undefined) return undefined
  try {
    return JSON.parse(line.slice(label.length).trim()) as unknown
  } catch {
    return undefined
  }
}
