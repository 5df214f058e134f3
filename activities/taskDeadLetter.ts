import { BeginRunFailureType, failureEventTypesOf, NON_RETRYABLE_FAILURE_TYPES, type AnnalistEvent, type FailedAttempt, type ReplayableStep, type TaskDeadLettered } from '../historian/events'
import { foldTask } from '../historian/taskState'

/** What the workflow knows about the failure that ended a run, as failTask receives it. */
export interface TaskFailure {
  readonly failedStep: TaskDeadLettered['data']['failedStep']
  readonly errorCode: string
  readonly message: string
  /** Temporal's retry state of the failed activity (ActivityFailure.retryState), e.g. MAXIMUM_ATTEMPTS_REACHED. */
  readonly retryState?: string
  /** The failed activity's ID, which its recorded attempt failures carry in their metadata. */
  readonly activityId?: string
  /** The failed activity's maximumAttempts, when the workflow's retry policy has one. */
  readonly maxAttempts?: number
}

/** Whether a failure dead-letters the task, with the TaskDeadLettered data, or why not. */
export type DeadLetterDecision =
  | { readonly deadLettered: true; readonly data: TaskDeadLettered['data'] }
  | { readonly deadLettered: false; readonly reason: string }

/**
 * Error codes that are retryable in kind: another attempt may succeed, so a step that failed with one of them after
 * its last attempt exhausted its retries. A model step records its last failure with `willRetry: false` and throws it
 * as non-retryable, so Temporal reports NON_RETRYABLE_FAILURE for it: the recorded failure is what tells.
 */
export const RETRYABLE_IN_KIND: readonly string[] = ['MODEL_TIMEOUT', 'MODEL_PROVIDER_ERROR', 'MODEL_OUTPUT_MALFORMED']

/** Failures no retry could fix: a redrive would fail the same way, so they never dead-letter. */
export const NEVER_DEAD_LETTERED: readonly string[] = [...NON_RETRYABLE_FAILURE_TYPES, BeginRunFailureType.checkpointInvalid]

/** Temporal retry states that mean Temporal itself gave up retrying (attempts used up, or the schedule-to-close time). */
const GAVE_UP: readonly string[] = ['MAXIMUM_ATTEMPTS_REACHED', 'TIMEOUT']

/** Most failed attempts a dead letter lists (the schema's limit); the most recent are kept. */
export const MAX_LISTED_FAILURES = 100

const MAX_MESSAGE = 2_000

/** A stored event as deadLetterFor needs it: its ID and the event. */
export interface DeadLetterInputEvent {
  readonly eventId: string
  readonly event: AnnalistEvent
}

/** The events of the task's latest pipeline run: everything from its last AgentTaskReceived or TaskRunStarted on. */
export function latestRunEvents<E extends DeadLetterInputEvent>(events: readonly E[]): readonly E[] {
  for (let index = events.length - 1; index >= 0; index--) {
    const type = events[index]!.event.type
    if (type === 'AgentTaskReceived' || type === 'TaskRunStarted') return events.slice(index)
  }
  return events
}

function failedAttempt(stored: DeadLetterInputEvent): FailedAttempt | undefined {
  const { event } = stored
  if (!('errorCode' in event.data) || typeof event.data.errorCode !== 'string' || !('message' in event.data)) return undefined
  return {
    eventId: stored.eventId,
    attempt: event.metadata.attempt,
    errorCode: event.data.errorCode,
    message: String(event.data.message).slice(0, MAX_MESSAGE),
    occurredAt: event.metadata.occurredAt,
  }
}

/**
 * Decides whether a failed task is dead-lettered, from the task's recorded events (stream order) and the failure the
 * workflow saw. A task is dead-lettered when its failed step EXHAUSTED ITS RETRIES:
 * - Temporal gave up retrying (retry state MAXIMUM_ATTEMPTS_REACHED or TIMEOUT), e.g. an activity that kept timing out; or
 * - the step's last recorded failure in this run says it will not be retried (`willRetry: false`) although its error is
 *   retryable in kind (RETRYABLE_IN_KIND): the model step used its last attempt.
 * Failures no retry could fix (NEVER_DEAD_LETTERED, or any other non-retryable failure) are not dead-lettered.
 * The dead letter lists every recorded failed attempt of the failed activity (of the failed step when the activity is
 * unknown) in the latest run, oldest first, plus the final failure as the workflow saw it when no event records it.
 * Pure: the same events and failure always give the same decision.
 */
export function deadLetterFor(events: readonly DeadLetterInputEvent[], failure: TaskFailure): DeadLetterDecision {
  const retryState = failure.retryState ?? 'UNSPECIFIED'
  if (NEVER_DEAD_LETTERED.includes(failure.errorCode)) return { deadLettered: false, reason: `${failure.errorCode} is a failure no retry can fix` }

  const types = failureEventTypesOf(failure.failedStep)
  const run = latestRunEvents(events)
  const recorded = run.filter(
    (stored) => types.includes(stored.event.type) && (failure.activityId === undefined || stored.event.metadata.activityId === failure.activityId),
  )
  const last = recorded.at(-1)
  const lastWillRetry = last && 'willRetry' in last.event.data ? last.event.data.willRetry : undefined
  const recordedExhaustion =
    last !== undefined && lastWillRetry === false && RETRYABLE_IN_KIND.includes(failure.errorCode) && 'errorCode' in last.event.data && last.event.data.errorCode === failure.errorCode
  if (!GAVE_UP.includes(retryState) && !recordedExhaustion) {
    return { deadLettered: false, reason: `step ${failure.failedStep} failed with ${failure.errorCode} (retry state ${retryState}) without exhausting its retries` }
  }

  const failures = recorded.flatMap((stored) => failedAttempt(stored) ?? [])
  const highestRecorded = failures.reduce((highest, attempt) => Math.max(highest, attempt.attempt), 0)
  let attempts = Math.max(highestRecorded, failures.length)
  if (retryState === 'MAXIMUM_ATTEMPTS_REACHED' && failure.maxAttempts !== undefined) attempts = Math.max(attempts, failure.maxAttempts)
  if (!recordedExhaustion) {
    // Temporal gave up on an attempt that recorded nothing (a timeout, a crash): list it as the workflow saw it.
    const finalAttempt = Math.max(attempts, highestRecorded + 1)
    failures.push({ eventId: null, attempt: finalAttempt, errorCode: failure.errorCode, message: failure.message.slice(0, MAX_MESSAGE), occurredAt: null })
    attempts = finalAttempt
  }
  return {
    deadLettered: true,
    data: {
      failedStep: failure.failedStep,
      errorCode: failure.errorCode,
      message: failure.message.slice(0, MAX_MESSAGE),
      attempts,
      retryState,
      failures: failures.slice(-MAX_LISTED_FAILURES),
      ...(run[0] ? { runId: run[0].event.metadata.runId } : {}),
    },
  }
}

/** The step a redrive starts from, by the step that failed: `complete` re-runs synthesis; `receive` cannot be redriven. */
const REDRIVE_FROM: Readonly<Record<TaskFailure['failedStep'], ReplayableStep | undefined>> = {
  receive: undefined,
  route: 'route',
  plan: 'plan',
  tools: 'tools',
  synthesize: 'synthesize',
  complete: 'synthesize',
}

/** Thrown when a task cannot be redriven: it is not dead-lettered, its dead letter was redriven already, or it failed at `receive`. */
export class RedriveRefusedError extends Error {
  constructor(
    readonly tenantId: string,
    readonly taskId: string,
    readonly reason: string,
  ) {
    super(`cannot redrive ${tenantId}/${taskId}: ${reason}`)
    this.name = 'RedriveRefusedError'
  }
}

/** What a redrive starts: the dead-lettered run (its parent), the step to start from, and the dead letter itself. */
export interface RedriveTarget {
  readonly parentRunId: string
  readonly fromStep: ReplayableStep
  readonly deadLetter: TaskDeadLettered['data']
}

function lastIndexWhere<E>(items: readonly E[], predicate: (item: E) => boolean): number {
  for (let index = items.length - 1; index >= 0; index--) if (predicate(items[index]!)) return index
  return -1
}

/**
 * Decides from a task's events (stream order) whether it can be redriven and from where: only when its latest run is
 * dead-lettered (TaskState.deadLettered). Otherwise throws RedriveRefusedError saying why: no such task, never
 * dead-lettered (still running, completed, or failed in a way no retry could fix), already redriven (by whom, when,
 * which run), or no longer dead-lettered because a replay started after it. Pure.
 */
export function redriveTarget(tenantId: string, taskId: string, events: readonly DeadLetterInputEvent[], options: { resume?: boolean } = {}): RedriveTarget {
  const refuse = (reason: string) => new RedriveRefusedError(tenantId, taskId, reason)
  if (events.length === 0) throw refuse('the task has no events (is the tenant or task ID mistyped?)')
  const state = foldTask(events.map((stored) => stored.event))
  const letterAt = lastIndexWhere(events, (stored) => stored.event.type === 'TaskDeadLettered')
  const letter = events[letterAt]?.event
  if (letter?.type !== 'TaskDeadLettered') {
    const why =
      state.status === 'failed'
        ? `it failed at step ${state.failedStep} with ${state.errorCode}, a failure no retry can fix (try \`replay\` with another model or prompt)`
        : state.status === 'completed'
          ? 'it completed'
          : 'it is still running'
    throw refuse(`it is not dead-lettered: ${why}`)
  }
  const letterRun = letter.data.runId ?? letter.metadata.runId
  // A redrive recorded its request but its run has not recorded its start: another redrive is on its way, or died before
  // starting its run. Only an operator who knows it died repeats it (`--resume`); otherwise two runs could start.
  const requested = events
    .slice(letterAt + 1)
    .flatMap((stored) => (stored.event.type === 'RedriveRequested' && stored.event.data.deadLetteredRunId === letterRun ? [stored.event] : []))
    .at(-1)
  if (state.deadLettered && requested && !options.resume) {
    throw refuse(
      `a redrive of its dead letter (run ${letterRun}) was requested by ${requested.data.requestedBy} at ${requested.metadata.occurredAt} and its run has not started yet; ` +
        'if that redrive died before starting its run, repeat it with --resume',
    )
  }
  if (state.deadLettered && options.resume && !requested) throw refuse(`--resume repeats a redrive whose run never started, but no redrive of run ${letterRun} was requested`)
  if (state.deadLettered) {
    const fromStep = REDRIVE_FROM[letter.data.failedStep]
    if (!fromStep) throw refuse('it failed at step receive, before any step ran: there is nothing to redrive; start the task again')
    return { parentRunId: state.runId ?? letterRun, fromStep, deadLetter: letter.data }
  }
  const later = events.slice(letterAt + 1).flatMap((stored) => (stored.event.type === 'TaskRunStarted' ? [stored.event] : []))
  const redrive = later.find((started) => started.data.reason === 'redrive' && started.data.parentRunId === letterRun)
  if (redrive) {
    throw refuse(`its dead letter (run ${letterRun}) was already redriven by ${redrive.data.requestedBy} at ${redrive.metadata.occurredAt} as run ${redrive.metadata.runId}`)
  }
  const next = later[0]
  throw refuse(`it is no longer dead-lettered: run ${next?.metadata.runId} (a ${next?.data.reason} by ${next?.data.requestedBy}) started after its dead letter`)
}
