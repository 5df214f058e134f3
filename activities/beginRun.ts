import { ApplicationFailure } from '@temporalio/activity'
import { CheckpointInvalidError } from '../historian/checkpoints/checkpointErrors'
import { checkpointRef } from '../historian/checkpoints/checkpoint'
import { ChainBrokenError } from '../historian/checkpoints/chainUpTo'
import { verifyCheckpointOnIntactChain } from '../historian/checkpoints/signCheckpoint'
import { BeginRunFailureType, FailureType, MODEL_ROLES } from '../historian/events'
import type { Historian } from '../historian/historian'
import { MissingIntegrityKeyError } from '../historian/integrity/integrityErrors'
import { foldTask } from '../historian/taskState'
import type { LinkedRunInput, TaskRef } from '../workflows/api'
import { currentActivityScope } from './activityScope'
import { activityEvent, lastEventIdOf } from './activityEvent'
import { promptTemplateFor, UnknownPromptVersionError } from './models/prompts'
import { recordOnce } from './recordOnce'

/** What the workflow needs of the steps a linked run reuses. */
export interface BeginRunResult {
  readonly eventId: string
  readonly parentRunId: string
  readonly route?: string
  readonly toolCallIds: string[]
  /** Tool calls that failed among the reused outcomes (a run from `synthesize` reuses them all). */
  readonly toolCallsFailed: number
}

const refused = (type: string, message: string) => ApplicationFailure.create({ message, type, nonRetryable: true })

/**
 * Creates the `beginRun` activity of a replay or redrive: verifies the signed checkpoint against the task's stream with
 * the worker's key ring, after verifying the task stream's hash chain up to its revision (refusing a broken chain, or a
 * tampered, foreign, superseded or stale checkpoint, with a non-retryable CHECKPOINT_INVALID,
 * before anything is recorded) and appends TaskRunStarted inside the idempotent boundary.
 */
export function createBeginRun(deps: { historian: Historian; clock: () => Date }) {
  return async function beginRun(input: TaskRef & { run: LinkedRunInput }): Promise<BeginRunResult> {
    const scope = currentActivityScope(input)
    const { run } = input
    const outcome = await recordOnce({
      historian: deps.historian,
      scope,
      work: async (stream) => {
        const keyRing = deps.historian.keyRing
        if (!keyRing) throw new MissingIntegrityKeyError(stream.streamName)
        try {
          for (const role of MODEL_ROLES) promptTemplateFor(role, run.overrides.promptVersions[role])
        } catch (error) {
          if (error instanceof UnknownPromptVersionError) throw refused(BeginRunFailureType.overridesInvalid, error.message)
          throw error
        }
        let checkpoint
        try {
          checkpoint = (await verifyCheckpointOnIntactChain({ store: deps.historian.store, keyRing }, input, run.checkpoint, stream.events)).checkpoint
        } catch (error) {
          if (error instanceof CheckpointInvalidError || error instanceof ChainBrokenError) throw refused(BeginRunFailureType.checkpointInvalid, error.message)
          throw error
        }
        if (checkpoint.step !== run.fromStep) {
          throw refused(BeginRunFailureType.checkpointInvalid, `the checkpoint is before step ${checkpoint.step}, but the run starts from ${run.fromStep}`)
        }
        const data = {
          reason: run.reason,
          parentRunId: checkpoint.parentRunId,
          fromStep: run.fromStep,
          requestedBy: run.requestedBy,
          ...(run.note === undefined ? {} : { note: run.note }),
          checkpoint: checkpointRef(checkpoint),
          overrides: run.overrides,
        }
        return [activityEvent('TaskRunStarted', data, scope, deps.clock(), lastEventIdOf(stream))]
      },
    })
    const eventId = outcome.eventIds[0]!
    const started = outcome.events[0]
    if (started?.type !== 'TaskRunStarted') throw refused(FailureType.brokenInvariant, `begin-run outcome is ${started?.type}`)
    // The state the run starts from: the stream folded up to its TaskRunStarted (later events are this run's own).
    const stream = await deps.historian.readTask(input.tenantId, input.taskId)
    const upTo = stream.events.findIndex((stored) => stored.eventId === eventId)
    const state = foldTask(stream.events.slice(0, upTo + 1).map((stored) => stored.event))
    return {
      eventId,
      parentRunId: started.data.parentRunId,
      ...(state.route === undefined ? {} : { route: state.route }),
      toolCallIds: state.toolCalls.map((call) => call.toolCallId),
      toolCallsFailed: Object.values(state.toolOutcomes).filter((toolOutcome) => !toolOutcome.ok).length,
    }
  }
}
