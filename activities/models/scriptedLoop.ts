import { ToolName } from '../tools/tool'
import type { LoopPlanningReply, LoopPosition, LoopProgress } from './loopPrompts'
import type { PromptTool } from './prompts'

/** Knowledge-base topics the scripted loop planner cycles through. */
const LOOP_TOPICS = ['refund policy', 'notification channels', 'account plans', 'data retention', 'invoice billing', 'security incidents', 'password reset', 'service limits']

/** Every how-many-th call of a loop is a knowledge-base search (when both tools are available); the rest are calculations. */
const SEARCH_EVERY = 4

/** The number of tool calls a task asks for in so many words ("... 240 checks ..."), if it does. */
export function requestedToolCalls(input: string): number | undefined {
  const match = /\b(\d{1,5})\s+(?:tool\s+)?(?:calls|steps|checks|items|calculations|lookups)\b/i.exec(input)
  return match?.[1] === undefined ? undefined : Number(match[1])
}

/**
 * The scripted loop planner: a pure function of the task, the tools offered, the iteration and the progress recorded so
 * far, so it plans hundreds of calls deterministically. It uses only side-effect-free tools (calculator, knowledge base):
 * call n of the loop computes `n * n + iteration`, every fourth searches a knowledge-base topic. It asks for the most
 * calls the iteration allows, or only those still missing when the task names a count, and says done at the last
 * iteration or once that count is reached.
 */
export function scriptedLoopPlan(input: string, tools: readonly PromptTool[], loop: LoopPosition, progress: Pick<LoopProgress, 'toolCallsDone'>): LoopPlanningReply {
  const available = new Set(tools.map((tool) => tool.name))
  const calculator = available.has(ToolName.calculator)
  const search = available.has(ToolName.searchKnowledgeBase)
  const target = requestedToolCalls(input)
  const wanted = target === undefined ? loop.maxToolCalls : Math.min(loop.maxToolCalls, Math.max(0, target - progress.toolCallsDone))
  const count = calculator || search ? wanted : 0
  const toolCalls = Array.from({ length: count }, (_, index) => {
    const n = progress.toolCallsDone + index + 1
    const toolCallId = `${loop.toolCallIdPrefix}${index + 1}`
    if (search && (!calculator || n % SEARCH_EVERY === 0)) {
      return { toolCallId, toolName: ToolName.searchKnowledgeBase, parameters: { query: LOOP_TOPICS[Math.floor(n / SEARCH_EVERY) % LOOP_TOPICS.length]! } }
    }
    return { toolCallId, toolName: ToolName.calculator, parameters: { expression: `${n} * ${n} + ${loop.iteration}` } }
  })
  const reachedTarget = target !== undefined && progress.toolCallsDone + toolCalls.length >= target
  return { toolCalls, done: loop.iteration >= loop.maxIterations || reachedTarget || count === 0 }
}
