import type { PromptRef } from '../historian/events'
import type { TaskState } from '../historian/taskState'
import { brokenInvariant } from './failures'
import { renderLoopSynthesis } from './loopModelSteps'
import type { ModelStepSpec } from './runModelStep'
import type { RenderedPrompt } from './models/modelClient'
import { planningReplySchema } from './models/planSchemas'
import { promptRef, promptTemplateFor, Route, RoutingReply, synthesisPrompt, type PlanningReply, type PromptTemplate, type SynthesisToolResult } from './models/prompts'
import type { ToolRegistry } from './tools/registry'

function rendered<V>(template: PromptTemplate<V, unknown>, vars: V): RenderedPrompt & { promptRef: PromptRef } {
  const prompt = template.render(vars)
  return { ...prompt, promptRef: promptRef(template, prompt) }
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw brokenInvariant(`the task's recorded events have no ${what} yet`)
  return value
}

/** The routes the routing prompt offers the model, recorded on RoutingModelInvoked (schema v2) as `candidateRoutes`. */
const OFFERED_ROUTES: readonly string[] = Object.values(Route)

/** Routing: classifies the received task into a route. */
export const routingStep: ModelStepSpec<RoutingReply, 'RoutingModelInvoked'> = {
  role: 'routing',
  invokedType: 'RoutingModelInvoked',
  failedType: 'RoutingModelFailed',
  render: (state: TaskState) => rendered(promptTemplateFor('routing', state.overrides?.promptVersions.routing), { input: required(state.input, 'input') }),
  reply: { schema: RoutingReply },
  invokedData: (reply, invocation) => ({ ...invocation, route: reply.route, candidateRoutes: [...OFFERED_ROUTES] }),
}

/** Planning: turns the task and its route into tool calls from this worker's registry. */
export function planningStep(tools: ToolRegistry): ModelStepSpec<PlanningReply, 'PlanCreated'> {
  return {
    role: 'planning',
    invokedType: 'PlanCreated',
    failedType: 'PlanningModelFailed',
    render: (state) => rendered(promptTemplateFor('planning', state.overrides?.promptVersions.planning), { input: required(state.input, 'input'), route: required(state.route, 'route'), tools: tools.list() }),
    reply: { schema: planningReplySchema(tools) },
    invokedData: (reply, invocation) => ({ ...invocation, toolCalls: reply.toolCalls }),
  }
}

function toolResultsOf(state: TaskState): SynthesisToolResult[] {
  return state.toolCalls.map((call) => {
    const outcome = state.toolOutcomes[call.toolCallId]
    if (!outcome) throw brokenInvariant(`tool call ${call.toolCallId} has no recorded outcome`)
    return outcome.ok
      ? { toolCallId: call.toolCallId, toolName: call.toolName, ok: true, result: outcome.result }
      : { toolCallId: call.toolCallId, toolName: call.toolName, ok: false, errorCode: outcome.errorCode }
  })
}

/** Synthesis: writes the answer from the recorded tool results. */
export const synthesisStep: ModelStepSpec<string, 'SynthesisModelInvoked'> = {
  role: 'synthesis',
  invokedType: 'SynthesisModelInvoked',
  failedType: 'SynthesisModelFailed',
  // A long loop's answer comes from counts and a sample of results (activities/loopModelSteps.ts), not from every result.
  render: (state) =>
    state.iterations > 0 ? renderLoopSynthesis(state) : rendered(promptTemplateFor('synthesis', state.overrides?.promptVersions.synthesis), { input: required(state.input, 'input'), route: required(state.route, 'route'), toolResults: toolResultsOf(state) }),
  reply: { parseText: (text) => synthesisPrompt.parseReply(text) },
  invokedData: (answer, invocation) => ({ ...invocation, answer }),
}
