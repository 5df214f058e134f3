import { createHash } from 'node:crypto'
import { REPLAYABLE_STEPS, type ReplayableStep } from '../events'
import type { StoredEvent } from '../historian'
import { canonicalJson } from '../integrity/chainHash'
import { evolve, initialTaskState, type TaskState } from '../taskState'
import { StepNotReachedError } from './checkpointErrors'

/** A step boundary of the latest run: the state right before the step ran, and the revision of the event that got it there. */
export interface StepBoundary {
  readonly parentRunId: string
  readonly step: ReplayableStep
  readonly revision: number
  readonly state: TaskState
  readonly stateSha256: string
}

/** SHA-256 (hex) of the canonical (RFC 8785) JSON of a task state. */
export function taskStateSha256(state: TaskState): string {
  return createHash('sha256').update(canonicalJson(state)).digest('hex')
}

/** The step a state is ready to run: `currentStep`, except a plan with every tool call answered is ready to synthesize. */
function readyStep(state: TaskState): TaskState['currentStep'] {
  if (state.currentStep === 'tools' && state.loopDone !== false && state.toolCalls.every((call) => call.toolCallId in state.toolOutcomes)) return 'synthesize'
  return state.currentStep
}

/**
 * Folds a task's stream and returns the latest run's boundary before `step`: the state at the moment the run first
 * became ready to run that step. A replay or redrive keeps its parent's boundaries of the steps before its `fromStep`
 * and starts at `fromStep` right after its TaskRunStarted. Throws StepNotReachedError when the run never got there.
 */
export function checkpointAt(events: readonly StoredEvent[], step: ReplayableStep, where: { tenantId: string; taskId: string }): StepBoundary {
  let state = initialTaskState
  let boundaries = new Map<ReplayableStep, { revision: number; state: TaskState }>()
  for (const stored of events) {
    const event = stored.event
    state = evolve(state, event)
    const revision = Number(stored.revision)
    if (event.type === 'AgentTaskReceived') boundaries = new Map()
    if (event.type === 'TaskRunStarted') {
      const from = REPLAYABLE_STEPS.indexOf(event.data.fromStep)
      boundaries = new Map([...boundaries].filter(([kept]) => REPLAYABLE_STEPS.indexOf(kept) < from))
      boundaries.set(event.data.fromStep, { revision, state })
      continue
    }
    if (state.status !== 'running') continue
    const ready = REPLAYABLE_STEPS.indexOf(readyStep(state) as ReplayableStep)
    for (const candidate of REPLAYABLE_STEPS.slice(0, ready + 1)) {
      if (!boundaries.has(candidate)) boundaries.set(candidate, { revision, state })
    }
  }
  const boundary = boundaries.get(step)
  if (!boundary || state.runId === undefined) {
    throw new StepNotReachedError(where.tenantId, where.taskId, state.runId, step, state.status === 'failed' ? state.failedStep : undefined)
  }
  return { parentRunId: state.runId, step, revision: boundary.revision, state: boundary.state, stateSha256: taskStateSha256(boundary.state) }
}
