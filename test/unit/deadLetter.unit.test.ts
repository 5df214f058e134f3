import { describe, expect, it } from 'vitest'
import { deadLetterFor, latestRunEvents, MAX_LISTED_FAILURES, RedriveRefusedError, redriveTarget, type DeadLetterInputEvent, type TaskFailure } from '../../activities/taskDeadLetter'
import { CURRENT_SCHEMA_VERSION, REDRIVE_REQUEST_ACTIVITY, TaskDeadLettered, validateEvent, type AnnalistEvent } from '../../historian/events'
import type { PendingEvent } from '../../historian/historian'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'

const f = () => new TaskEventFactory('acme', 'task-1')

/** The events of a run up to synthesis: received, routed, planned, one tool call. */
function upToSynthesis(factory: TaskEventFactory): PendingEvent[] {
  return [factory.received(), factory.routingInvoked(), factory.planCreated(['search']), factory.toolExecuted('call-1', 'search')]
}

/** A synthesis step that failed with MODEL_PROVIDER_ERROR on every one of its four attempts, as runModelStep records it. */
function exhaustedSynthesis(factory: TaskEventFactory): PendingEvent[] {
  return [factory.synthesisFailed(true, 1), factory.synthesisFailed(true, 2), factory.synthesisFailed(true, 3), factory.synthesisFailed(false, 4)]
}

const synthesisGaveUp: TaskFailure = {
  failedStep: 'synthesize',
  errorCode: 'MODEL_PROVIDER_ERROR',
  message: 'upstream 503',
  retryState: 'NON_RETRYABLE_FAILURE',
  activityId: 'synthesize',
  maxAttempts: 4,
}

/** A TaskRunStarted event (a redrive of `parentRunId` from synthesis) in run `runId`. */
function runStarted(runId: string, parentRunId: string, reason: 'redrive' | 'replay' = 'redrive'): DeadLetterInputEvent {
  const event = {
    type: 'TaskRunStarted',
    data: {
      reason,
      parentRunId,
      fromStep: 'synthesize',
      requestedBy: 'alice',
      checkpoint: { parentRunId, step: 'synthesize', revision: 7, stateSha256: 'a'.repeat(64), signature: 'b'.repeat(64) },
      overrides: { models: {}, promptVersions: {} },
    },
    metadata: {
      schemaVersion: CURRENT_SCHEMA_VERSION.TaskRunStarted,
      tenantId: 'acme',
      taskId: 'task-1',
      workflowId: 'agent-pipeline:acme:task-1',
      runId,
      activityId: 'begin-run',
      attempt: 1,
      correlationId: 'agent-pipeline:acme:task-1',
      causationId: null,
      occurredAt: '2026-01-15T10:00:00.000Z',
      classification: 'internal',
    },
  } as AnnalistEvent
  return { eventId: `run-started-${runId}`, event }
}

function redriveRequested(deadLetteredRunId: string, requestedBy = 'bob', resumed = false): DeadLetterInputEvent {
  const event = validateEvent({
    type: 'RedriveRequested',
    data: { deadLetteredRunId, requestedBy, resumed },
    metadata: {
      schemaVersion: CURRENT_SCHEMA_VERSION.RedriveRequested,
      tenantId: 'acme',
      taskId: 'task-1',
      workflowId: 'agent-pipeline:acme:task-1',
      runId: deadLetteredRunId,
      activityId: REDRIVE_REQUEST_ACTIVITY,
      attempt: 1,
      correlationId: 'agent-pipeline:acme:task-1',
      causationId: null,
      occurredAt: '2026-01-15T09:59:00.000Z',
      classification: 'internal',
    },
  })
  return { eventId: `redrive-requested-${deadLetteredRunId}-${requestedBy}`, event }
}

function withRun(pending: PendingEvent, runId: string): DeadLetterInputEvent {
  return { eventId: `${pending.eventId}-${runId}`, event: { ...pending.event, metadata: { ...pending.event.metadata, runId } } as AnnalistEvent }
}

describe('deadLetterFor', () => {
  it('dead-letters a model step that used its last attempt, listing every recorded failed attempt with its context', () => {
    const factory = f()
    const failedAttempts = exhaustedSynthesis(factory)
    const decision = deadLetterFor([...upToSynthesis(factory), ...failedAttempts], synthesisGaveUp)
    expect(decision.deadLettered).toBe(true)
    if (!decision.deadLettered) return
    expect(decision.data).toEqual({
      failedStep: 'synthesize',
      errorCode: 'MODEL_PROVIDER_ERROR',
      message: 'upstream 503',
      attempts: 4,
      retryState: 'NON_RETRYABLE_FAILURE',
      failures: failedAttempts.map((pending, index) => ({
        eventId: pending.eventId,
        attempt: index + 1,
        errorCode: 'MODEL_PROVIDER_ERROR',
        message: 'upstream 503',
        occurredAt: pending.event.metadata.occurredAt,
      })),
      // The pipeline run that failed, which a redrive names as its parent.
      runId: 'run-1',
    })
    // What it returns is valid TaskDeadLettered data.
    expect(TaskDeadLettered.shape.data.parse(decision.data)).toEqual(decision.data)
  })

  it('does not dead-letter failures that no retry could fix', () => {
    const factory = f()
    const events = [...upToSynthesis(factory)]
    for (const errorCode of ['MODEL_CONTEXT_LENGTH_EXCEEDED', 'INVALID_IDENTIFIER', 'EVENT_SCHEMA_INVALID', 'BROKEN_INVARIANT', 'CHECKPOINT_INVALID']) {
      // Not even if Temporal reports the attempts used up.
      for (const retryState of ['NON_RETRYABLE_FAILURE', 'MAXIMUM_ATTEMPTS_REACHED']) {
        const decision = deadLetterFor(events, { ...synthesisGaveUp, errorCode, retryState })
        expect(decision).toEqual({ deadLettered: false, reason: `${errorCode} is a failure no retry can fix` })
      }
    }
  })

  it('does not dead-letter a retryable error unless the step recorded it as its final, unretried failure', () => {
    const factory = f()
    const base = upToSynthesis(factory)
    // The last recorded failure says it will be retried: the step did not use its last attempt.
    const stillRetrying = [...base, factory.synthesisFailed(true, 1)]
    expect(deadLetterFor(stillRetrying, synthesisGaveUp).deadLettered).toBe(false)
    // No failure recorded at all (a non-retryable failure of another kind).
    expect(deadLetterFor(base, synthesisGaveUp)).toMatchObject({ deadLettered: false, reason: expect.stringContaining('without exhausting its retries') })
    // The final recorded failure has another error code than the one the workflow saw.
    expect(deadLetterFor([...base, ...exhaustedSynthesis(factory)], { ...synthesisGaveUp, errorCode: 'MODEL_TIMEOUT' }).deadLettered).toBe(false)
    // A workflow-side cancellation is no exhaustion either.
    expect(deadLetterFor(base, { ...synthesisGaveUp, errorCode: 'ACTIVITY_FAILED', retryState: 'CANCEL_REQUESTED' }).deadLettered).toBe(false)
  })

  it('dead-letters an activity Temporal gave up on after its maximum attempts, listing the unrecorded final attempt', () => {
    const factory = f()
    const events = [...upToSynthesis(factory), factory.toolFailed('call-2', 'fetch')]
    const decision = deadLetterFor(events, {
      failedStep: 'tools',
      errorCode: 'ACTIVITY_TIMEOUT_HEARTBEAT',
      message: 'activity Heartbeat timeout',
      retryState: 'MAXIMUM_ATTEMPTS_REACHED',
      activityId: 'tool:call-3',
      maxAttempts: 5,
    })
    expect(decision).toEqual({
      deadLettered: true,
      data: {
        failedStep: 'tools',
        errorCode: 'ACTIVITY_TIMEOUT_HEARTBEAT',
        message: 'activity Heartbeat timeout',
        attempts: 5,
        retryState: 'MAXIMUM_ATTEMPTS_REACHED',
        // The failed tool call of another activity is not this activity's attempt.
        failures: [{ eventId: null, attempt: 5, errorCode: 'ACTIVITY_TIMEOUT_HEARTBEAT', message: 'activity Heartbeat timeout', occurredAt: null }],
        runId: 'run-1',
      },
    })
  })

  it('lists the recorded attempts before a final attempt that timed out (retry state TIMEOUT or MAXIMUM_ATTEMPTS_REACHED)', () => {
    const factory = f()
    const recorded = [factory.synthesisFailed(true, 1), factory.synthesisFailed(true, 2), factory.synthesisFailed(true, 3)]
    const events = [...upToSynthesis(factory), ...recorded]
    const timedOut = { ...synthesisGaveUp, errorCode: 'ACTIVITY_TIMEOUT_HEARTBEAT', message: 'heartbeat timeout', retryState: 'MAXIMUM_ATTEMPTS_REACHED' }
    const decision = deadLetterFor(events, timedOut)
    expect(decision.deadLettered && decision.data.attempts).toBe(4)
    expect(decision.deadLettered && decision.data.failures.map((failure) => [failure.eventId, failure.attempt, failure.errorCode])).toEqual([
      ...recorded.map((pending, index) => [pending.eventId, index + 1, 'MODEL_PROVIDER_ERROR']),
      [null, 4, 'ACTIVITY_TIMEOUT_HEARTBEAT'],
    ])
    const scheduleTimeout = deadLetterFor(events, { ...timedOut, retryState: 'TIMEOUT', maxAttempts: undefined })
    expect(scheduleTimeout.deadLettered && [scheduleTimeout.data.attempts, scheduleTimeout.data.retryState, scheduleTimeout.data.failures.length]).toEqual([4, 'TIMEOUT', 4])
  })

  it("counts only the latest run's attempts: a redriven run that fails again lists its own", () => {
    const factory = f()
    const firstRun = [...upToSynthesis(factory), ...exhaustedSynthesis(factory)]
    const secondRunFailures = [factory.synthesisFailed(true, 1), factory.synthesisFailed(false, 2)].map((pending) => withRun(pending, 'run-2'))
    const events: DeadLetterInputEvent[] = [...firstRun, runStarted('run-2', 'run-1'), ...secondRunFailures]
    expect(latestRunEvents(events).map((stored) => stored.eventId)).toEqual(['run-started-run-2', ...secondRunFailures.map((stored) => stored.eventId)])
    const decision = deadLetterFor(events, synthesisGaveUp)
    expect(decision.deadLettered && [decision.data.attempts, decision.data.runId]).toEqual([2, 'run-2'])
    expect(decision.deadLettered && decision.data.failures.map((failure) => failure.eventId)).toEqual(secondRunFailures.map((stored) => stored.eventId))
  })

  it("lists only the failed activity's attempts when the workflow names it, and the step's otherwise", () => {
    const factory = f()
    const events = [...upToSynthesis(factory), ...exhaustedSynthesis(factory)]
    const other = withRun(factory.synthesisFailed(true, 1), 'run-1')
    const foreign: DeadLetterInputEvent = { ...other, event: { ...other.event, metadata: { ...other.event.metadata, activityId: 'synthesize:other' } } as AnnalistEvent }
    const named = deadLetterFor([...events, foreign], { ...synthesisGaveUp, activityId: 'synthesize' })
    // The foreign attempt comes last, so naming the activity is what keeps the final failure recognised.
    expect(named.deadLettered && named.data.failures).toHaveLength(4)
    const unnamed = deadLetterFor([...events], { ...synthesisGaveUp, activityId: undefined })
    expect(unnamed.deadLettered && unnamed.data.failures).toHaveLength(4)
  })

  it('keeps the most recent failures within the schema limit and cuts long messages', () => {
    const factory = f()
    const many = Array.from({ length: MAX_LISTED_FAILURES + 20 }, (_, index) => factory.synthesisFailed(true, index + 1))
    const events = [...upToSynthesis(factory), ...many, factory.synthesisFailed(false, many.length + 1)]
    const decision = deadLetterFor(events, { ...synthesisGaveUp, message: 'x'.repeat(5_000) })
    expect(decision.deadLettered).toBe(true)
    if (!decision.deadLettered) return
    expect(decision.data.failures).toHaveLength(MAX_LISTED_FAILURES)
    expect(decision.data.failures.at(-1)!.attempt).toBe(many.length + 1)
    expect(decision.data.attempts).toBe(many.length + 1)
    expect(decision.data.message).toHaveLength(2_000)
    expect(TaskDeadLettered.shape.data.parse(decision.data)).toEqual(decision.data)
  })

  it('records an unknown retry state as UNSPECIFIED', () => {
    const factory = f()
    const decision = deadLetterFor([...upToSynthesis(factory), ...exhaustedSynthesis(factory)], { ...synthesisGaveUp, retryState: undefined })
    expect(decision.deadLettered && decision.data.retryState).toBe('UNSPECIFIED')
  })
})

/** A run that dead-lettered at `failedStep`, as failTask records it: the attempts, AgentTaskFailed and TaskDeadLettered. */
function deadLetteredRun(factory: TaskEventFactory, failedStep: TaskFailure['failedStep'] = 'synthesize', runId = 'run-1'): DeadLetterInputEvent[] {
  const events: DeadLetterInputEvent[] = [...upToSynthesis(factory), ...exhaustedSynthesis(factory), factory.failed(failedStep, 'MODEL_PROVIDER_ERROR')].map((pending) => withRun(pending, runId))
  const decision = deadLetterFor(events, { ...synthesisGaveUp, failedStep, activityId: undefined, retryState: 'MAXIMUM_ATTEMPTS_REACHED' })
  if (!decision.deadLettered) throw new Error(decision.reason)
  const failed = events.at(-1)!
  return [...events, { eventId: `dead-letter-${runId}`, event: { type: 'TaskDeadLettered', data: decision.data, metadata: failed.event.metadata } as AnnalistEvent }]
}

describe('redriveTarget', () => {
  const refusal = (events: readonly DeadLetterInputEvent[]) => {
    try {
      redriveTarget('acme', 'task-1', events)
    } catch (error) {
      expect(error).toBeInstanceOf(RedriveRefusedError)
      return (error as Error).message
    }
    throw new Error('expected a refusal')
  }

  it('redrives a dead-lettered task from its failed step, with the dead-lettered run as parent', () => {
    const events = deadLetteredRun(f())
    expect(redriveTarget('acme', 'task-1', events)).toMatchObject({ parentRunId: 'run-1', fromStep: 'synthesize', deadLetter: { failedStep: 'synthesize', errorCode: 'MODEL_PROVIDER_ERROR', attempts: 4 } })
    for (const step of ['route', 'plan', 'tools'] as const) expect(redriveTarget('acme', 'task-1', deadLetteredRun(f(), step)).fromStep).toBe(step)
    // A task that gave up while completing re-runs synthesis.
    expect(redriveTarget('acme', 'task-1', deadLetteredRun(f(), 'complete')).fromStep).toBe('synthesize')
  })

  it('refuses a task that failed at receive, with a clear reason', () => {
    expect(refusal(deadLetteredRun(f(), 'receive'))).toBe('cannot redrive acme/task-1: it failed at step receive, before any step ran: there is nothing to redrive; start the task again')
  })

  it('refuses a task that is not dead-lettered, saying what it is instead', () => {
    const factory = f()
    expect(refusal([])).toBe('cannot redrive acme/task-1: the task has no events (is the tenant or task ID mistyped?)')
    expect(refusal(upToSynthesis(factory))).toBe('cannot redrive acme/task-1: it is not dead-lettered: it is still running')
    const completed = [...upToSynthesis(f()), factory.synthesisInvoked(), factory.completed({ totalTokens: 1, totalCostUsd: 0, toolCallsSucceeded: 1, toolCallsFailed: 0 })]
    expect(refusal(completed)).toBe('cannot redrive acme/task-1: it is not dead-lettered: it completed')
    const contextLength = [...upToSynthesis(f()), factory.failed('synthesize', 'MODEL_CONTEXT_LENGTH_EXCEEDED')]
    expect(refusal(contextLength)).toMatch(/^cannot redrive acme\/task-1: it is not dead-lettered: it failed at step synthesize with MODEL_CONTEXT_LENGTH_EXCEEDED, a failure no retry can fix/)
  })

  it('refuses a redrive while another recorded its request and its run has not started, unless told to resume it', () => {
    const requested = [...deadLetteredRun(f()), redriveRequested('run-1')]
    expect(refusal(requested)).toBe(
      'cannot redrive acme/task-1: a redrive of its dead letter (run run-1) was requested by bob at 2026-01-15T09:59:00.000Z and its run has not started yet; if that redrive died before starting its run, repeat it with --resume',
    )
    expect(redriveTarget('acme', 'task-1', requested, { resume: true })).toMatchObject({ parentRunId: 'run-1', fromStep: 'synthesize' })
    expect(() => redriveTarget('acme', 'task-1', deadLetteredRun(f()), { resume: true })).toThrow(/--resume repeats a redrive whose run never started, but no redrive of run run-1 was requested/)
    // Once the requested run started, the dead letter is redriven: resuming is refused like any other redrive.
    const started = [...requested, runStarted('run-2', 'run-1')]
    expect(() => redriveTarget('acme', 'task-1', started, { resume: true })).toThrow(/was already redriven by alice/)
  })

  it('refuses a second redrive of the same dead letter, naming who redrove it, and allows redriving a redrive that dead-lettered again', () => {
    const first = [...deadLetteredRun(f()), runStarted('run-2', 'run-1')]
    expect(refusal(first)).toBe('cannot redrive acme/task-1: its dead letter (run run-1) was already redriven by alice at 2026-01-15T10:00:00.000Z as run run-2')
    const replayed = [...deadLetteredRun(f()), runStarted('run-2', 'run-1', 'replay')]
    expect(refusal(replayed)).toBe('cannot redrive acme/task-1: it is no longer dead-lettered: run run-2 (a replay by alice) started after its dead letter')
    const again = [...first, ...deadLetteredRun(f(), 'synthesize', 'run-2').slice(4)]
    expect(redriveTarget('acme', 'task-1', again)).toMatchObject({ parentRunId: 'run-2', fromStep: 'synthesize' })
  })
})
