import type { TaskState } from '../historian/taskState'
import { renderLoopSynthesis } from './loopModelSteps'
import { allToolResults, recordedFact, renderedPrompt } from './modelStepInputs'
import type { ModelStepSpec } from './runModelStep'
import { planningReplySchema } from './models/planSchemas'
import { promptTemplateFor, Route, RoutingReply, synthesisPrompt, type PlanningReply } from './models/prompts'
import type { ToolRegistry } from './tools/registry'

/** The routes the routing prompt offers the model, recorded on RoutingModelInvoked (schema v2) as `candidateRoutes`. */
const OFFERED_ROUTES: readonly string[] = Object.values(Route)

/** Routing: classifies the received task into a route. */
export const routingStep: ModelStepSpec<RoutingReply, 'RoutingModelInvoked'> = {
  role: 'routing',
  invokedType: 'RoutingModelInvoked',
  failedType: 'RoutingModelFailed',
  render: (state: TaskState) => renderedPrompt(promptTemplateFor('routing', state.overrides?.promptVersions.routing), { input: recordedFact(state.input, 'input') }),
  reply: { schema: RoutingReply },
  invokedData: (reply, invocation) => ({ ...invocation, route: reply.route, candidateRoutes: [...OFFERED_ROUTES] }),
}

/** Planning: turns the task and its route into tool calls from this worker's registry. */
export function planningStep(tools: ToolRegistry): ModelStepSpec<PlanningReply, 'PlanCreated'> {
  return {
    role: 'planning',
    invokedType: 'PlanCreated',
    failedType: 'PlanningModelFailed',
    render: (state) => renderedPrompt(promptTemplateFor('planning', state.overrides?.promptVersions.planning), { input: recordedFact(state.input, 'input'), route: recordedFact(state.route, 'route'), tools: tools.list() }),
    reply: { schema: planningReplySchema(tools) },
    invokedData: (reply, invocation) => ({ ...invocation, toolCalls: reply.toolCalls }),
  }
}

/** Synthesis: writes the answer from the recorded tool results. */
export const synthesisStep: ModelStepSpec<string, 'SynthesisModelInvoked'> = {
  role: 'synthesis',
  invokedType: 'SynthesisModelInvoked',
  failedType: 'SynthesisModelFailed',
  // A long loop's answer comes from counts and a sample of results (activities/loopModelSteps.ts), not from every result.
  render: (state) =>
    state.iterations > 0 ? renderLoopSynthesis(state) : renderedPrompt(promptTemplateFor('synthesis', state.overrides?.promptVersions.synthesis), { input: recordedFact(state.input, 'input'), route: recordedFact(state.route, 'route'), toolResults: allToolResults(state) }),
  reply: { parseText: (text) => synthesisPrompt.parseReply(text) },
  invokedData: (answer, invocation) => ({ ...invocation, answer }),
}
