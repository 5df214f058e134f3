import type { FaultPlan } from '../../../dev/faults/faultPlan'
import type { RunOverrides } from '../../../historian/events'
import type { LoopOptions, PipelineTuning, ReplayableStep } from '../../../workflows/api'
import type { PipelineWrappers } from '../pipelineWrappers'

/**
 * A pipeline whose Temporal history is kept, so that a non-deterministic change to workflow code fails CI.
 * `recordedBefore` names the patch (see docs/workflow-changes.md) the history predates: it was recorded with the workflow
 * code from before that change, proves that old executions still replay through the patched code, and is never re-recorded.
 */
export interface HistoryScenario {
  readonly name: string
  readonly input: string
  readonly faults?: FaultPlan
  readonly recordedBefore?: string
  /** A long agent loop (workflows/agentLoop.ts), with the tuning it runs with. */
  readonly loop?: LoopOptions
  readonly tuning?: PipelineTuning
  /** A replay (docs/replay.md): after the pipeline completes, a linked run from this step is recorded instead. */
  readonly replay?: { readonly fromStep: ReplayableStep; readonly overrides?: RunOverrides }
  /** Test wrappers of the recording worker (slow tools, tool calls that fail for good). */
  readonly wrappers?: PipelineWrappers
  /** Cancelled by Temporal's own cancel as soon as the task's first side effect is recorded. */
  readonly cancelAfterSideEffect?: boolean
  /** How the pipeline ends: 'failed' with faults or failing tool calls, 'completed' otherwise, unless said here. */
  readonly expectedStatus?: 'completed' | 'failed' | 'cancelled'
}

/** A notification goes out (t1, send_notification), then synthesis fails for good: the task fails after a side effect. */
const notifiedThenFailed = {
  input: 'Notify the on-call team on slack that the nightly export finished',
  faults: { rules: [{ target: 'synthesis', kind: 'context_length', attempts: [1, 2, 3, 4] }] },
} satisfies Omit<HistoryScenario, 'name'>

/** A notification goes out (t1) while a knowledge-base search (t2) hangs until cancelled: a cancel during the tool phase. */
const cancelledDuringTools = {
  input: 'Notify the on-call team on slack that the nightly export finished',
  faults: { rules: [{ target: 'tool:search_knowledge_base', kind: 'timeout', attempts: [1, 2, 3, 4, 5] }] },
  cancelAfterSideEffect: true,
  expectedStatus: 'cancelled',
} satisfies Omit<HistoryScenario, 'name'>

/** Two lanes: a slow notification (t1) is in flight when the calculation (t2) fails for good; a search (t3) waits its turn. */
const fanOutFailure = {
  input: 'Notify the on-call team on slack that 2 + 3 checks finished',
  tuning: { toolConcurrency: 2 },
  wrappers: { slowTools: { send_notification: 1_500 }, failingToolCalls: ['t2'] },
} satisfies Omit<HistoryScenario, 'name'>

/** The pipelines whose histories are kept, so that a non-deterministic change to workflow code fails CI. */
export const HISTORY_SCENARIOS: readonly HistoryScenario[] = [
  { name: 'completed-with-tools', input: 'Find the refund policy and notify support by email' },
  {
    name: 'failed-at-synthesis',
    input: 'Search the knowledge base for the data retention policy',
    faults: { rules: [{ target: 'synthesis', kind: 'context_length', attempts: [1, 2, 3, 4] }] },
  },
  // Recorded with the workflow code from before compensations: replays through the patched code with patched() false.
  { name: 'notified-then-failed-before-compensation', ...notifiedThenFailed, recordedBefore: 'compensate-side-effects' },
  // Recorded with the patched code: the same failure, now with the compensate-side-effects marker and compensate:t1.
  { name: 'notified-then-failed-compensated', ...notifiedThenFailed },
  // A long agent loop of three iterations in one run: plan:1..3 with their tool calls, then synthesis.
  { name: 'loop-in-one-run', input: 'Run 6 checks over the ledger', loop: { maxIterations: 5, toolCallsPerIteration: 2 } },
  // The last run of a loop that continued as new (`workflow show` keeps the latest run): no receive or route, the loop
  // goes on from its loopState. Needs a continue-as-new threshold low enough to hand over after every iteration.
  // A replay from tools with a synthesis prompt override (`workflow show` keeps the latest run, the replay): begin-run,
  // no route or plan, the tool calls again, synthesis and completion.
  { name: 'replayed-from-tools', input: 'Find the refund policy and notify support by email', replay: { fromStep: 'tools', overrides: { models: {}, promptVersions: { synthesis: '1.1.0' } } } },
  // Recorded with the workflow code from before recorded cancels: the cancel ended the workflow with no terminal event.
  { name: 'cancelled-during-tools-before-recorded-cancel', ...cancelledDuringTools, recordedBefore: 'recorded-cancel' },
  // Recorded with the workflow code from before the fan-out drained: the failure was recorded while t1 still ran.
  { name: 'fan-out-failed-before-drain', ...fanOutFailure, recordedBefore: 'drain-fan-out' },
  // The same two with the patched code: the cancel compensates t1 and records AgentTaskCancelled (requester unknown), and
  // the fan-out waits for t1, schedules no t3, and compensates t1 before failTask.
  { name: 'cancelled-during-tools-recorded', ...cancelledDuringTools },
  { name: 'fan-out-failed-drained', ...fanOutFailure },
  { name: 'loop-continued-run', input: 'Run 6 checks over the ledger', loop: { maxIterations: 5, toolCallsPerIteration: 2 }, tuning: { continueAsNewAtHistoryLength: 10 } },
]
