import { z } from 'zod'
import { PlannedToolCall } from '../../historian/events/model'
import { ModelCallError, parseModelJson } from './modelErrors'
import { PromptLabel, type PromptTemplate, type PromptTool, type SynthesisToolResult } from './prompts'

/** Labels of the loop prompts' machine-readable lines (single-line JSON after each, like PromptLabel's). */
export const LoopPromptLabel = {
  loop: 'Loop (JSON):',
  progress: 'Progress (JSON):',
  summary: 'Tool call summary (JSON):',
  sample: 'Tool results sample (JSON):',
} as const

/** Recent results the loop planner sees each iteration, and results the loop synthesis prompt shows from each end. */
export const LOOP_RECENT_RESULTS = 3
export const LOOP_SAMPLE_RESULTS = 3
/** A tool result longer than this (as JSON) is shown truncated in loop prompts, so prompts stay bounded. */
const MAX_RESULT_CHARS = 600

/** Where this iteration stands in the loop and how its tool calls must be named. */
export interface LoopPosition {
  iteration: number
  maxIterations: number
  /** Tool calls this iteration may ask for at most. */
  maxToolCalls: number
  /** Every tool call ID of this iteration starts with it (`i<iteration>-c`), so IDs are unique across iterations. */
  toolCallIdPrefix: string
}

/** What the loop has done so far: counts, and the most recent results. */
export interface LoopProgress {
  toolCallsDone: number
  succeeded: number
  failed: number
  recentResults: SynthesisToolResult[]
}

export interface LoopPlanningVars {
  input: string
  route: string
  tools: readonly PromptTool[]
  loop: LoopPosition
  progress: LoopProgress
}

/** Counts of a whole loop's tool calls, overall and per tool. */
export interface LoopSummary {
  iterations: number
  toolCalls: number
  succeeded: number
  failed: number
  byTool: Record<string, { succeeded: number; failed: number }>
}

export interface LoopSynthesisVars {
  input: string
  route: string
  summary: LoopSummary
  /** A few results from each end of the loop, not every result: the prompt stays bounded however long the loop ran. */
  sample: SynthesisToolResult[]
}

/** The loop planner's reply: this iteration's tool calls (distinct IDs) and whether the task is done. */
export const LoopPlanningReply = z.object({
  toolCalls: z
    .array(PlannedToolCall)
    .max(64)
    .refine((calls) => new Set(calls.map((call) => call.toolCallId)).size === calls.length, 'toolCallIds must be distinct'),
  done: z.boolean(),
})
export type LoopPlanningReply = z.infer<typeof LoopPlanningReply>

/** The tool call ID prefix of one iteration. */
export const toolCallIdPrefix = (iteration: number) => `i${iteration}-c`

const LOOP_PLANNING_SYSTEM = [
  'You are the planning model of a long agent loop. Each iteration you see the task, the progress so far and the most',
  'recent tool results, and you ask for the next tool calls. Use only the available tools, with the parameters their',
  'descriptions name, and at most the number of calls the loop line allows. Name the calls with the loop line\'s',
  'toolCallIdPrefix followed by 1, 2, ... (e.g. i3-c1, i3-c2). Set done to true when the task needs no more tool calls',
  'or this is the last iteration; an empty toolCalls list with done false wastes an iteration.',
  'Reply with JSON only, no prose and no code fence:',
  '{"toolCalls":[{"toolCallId":"i1-c1","toolName":"<tool>","parameters":{}}],"done":false}',
].join('\n')

const LOOP_SYNTHESIS_SYSTEM = [
  'You are the synthesis model of a long agent loop. Write a short plain-text answer to the task from the summary of all',
  'tool calls and the sample of results. Give the counts, cite each sampled result you use by its toolCallId in square',
  'brackets, e.g. [i1-c1], and say plainly how many tool calls failed.',
].join('\n')

/** A tool result as loop prompts show it: whole when small, otherwise a truncated JSON string. */
export function boundedResult(result: SynthesisToolResult): SynthesisToolResult {
  if (!result.ok) return result
  const json = JSON.stringify(result.result) ?? 'null'
  return json.length <= MAX_RESULT_CHARS ? result : { ...result, result: { truncatedJson: `${json.slice(0, MAX_RESULT_CHARS - 3)}...` } }
}

/** Loop planning prompt: one iteration of a long agent loop, from the task's recorded progress. */
export const loopPlanningPrompt: PromptTemplate<LoopPlanningVars, LoopPlanningReply> = {
  templateId: 'plan-loop-iteration',
  templateVersion: '1.0.0',
  system: LOOP_PLANNING_SYSTEM,
  render: ({ input, route, tools, loop, progress }) => ({
    system: LOOP_PLANNING_SYSTEM,
    prompt: [
      `${PromptLabel.route} ${JSON.stringify(route)}`,
      `${PromptLabel.tools} ${JSON.stringify(tools.map(({ name, description }) => ({ name, description })))}`,
      `${LoopPromptLabel.loop} ${JSON.stringify(loop)}`,
      `${LoopPromptLabel.progress} ${JSON.stringify({ ...progress, recentResults: progress.recentResults.map(boundedResult) })}`,
      `${PromptLabel.task} ${JSON.stringify(input)}`,
    ].join('\n'),
  }),
  parseReply: (text) => parseModelJson(text, LoopPlanningReply),
}

/**
 * Parses a loop planner's reply and checks it against the iteration: at most `maxToolCalls` calls, each ID starting
 * with the iteration's prefix. A reply that breaks either is malformed (retryable: a resample may get it right).
 */
export function parseLoopPlanningReply(text: string, loop: LoopPosition): LoopPlanningReply {
  const reply = loopPlanningPrompt.parseReply(text)
  const problems: string[] = []
  if (reply.toolCalls.length > loop.maxToolCalls) problems.push(`${reply.toolCalls.length} tool calls, but iteration ${loop.iteration} allows ${loop.maxToolCalls}`)
  const misnamed = reply.toolCalls.filter((call) => !call.toolCallId.startsWith(loop.toolCallIdPrefix)).map((call) => call.toolCallId)
  if (misnamed.length > 0) problems.push(`tool call IDs ${misnamed.join(', ')} do not start with ${loop.toolCallIdPrefix}`)
  if (problems.length > 0) {
    throw new ModelCallError('MODEL_OUTPUT_MALFORMED', `loop planner reply breaks the loop's rules: ${problems.join('; ')}`, { retryable: true, latencyMs: 0 })
  }
  return reply
}

/** Loop synthesis prompt: the answer from a loop's counts and a sample of its results. */
export const loopSynthesisPrompt: PromptTemplate<LoopSynthesisVars, string> = {
  templateId: 'synthesize-loop-answer',
  templateVersion: '1.0.0',
  system: LOOP_SYNTHESIS_SYSTEM,
  render: ({ input, route, summary, sample }) => ({
    system: LOOP_SYNTHESIS_SYSTEM,
    prompt: [
      `${PromptLabel.route} ${JSON.stringify(route)}`,
      `${LoopPromptLabel.summary} ${JSON.stringify(summary)}`,
      `${LoopPromptLabel.sample} ${JSON.stringify(sample.map(boundedResult))}`,
      `${PromptLabel.task} ${JSON.stringify(input)}`,
    ].join('\n'),
  }),
  parseReply: (text) => {
    const answer = text.trim()
    if (answer.length === 0) throw new ModelCallError('MODEL_OUTPUT_MALFORMED', 'loop synthesis model returned an empty answer', { retryable: true, latencyMs: 0 })
    return answer
  },
}
