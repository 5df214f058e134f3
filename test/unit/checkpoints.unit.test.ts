import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Checkpoint } from '../../historian/checkpoints/checkpoint'
import { checkpointAt, taskStateSha256 } from '../../historian/checkpoints/checkpointAt'
import { CheckpointInvalidError, CheckpointProblem, StepNotReachedError } from '../../historian/checkpoints/checkpointErrors'
import { checkpointKey, checkpointSignature, makeCheckpoint, verifyCheckpoint } from '../../historian/checkpoints/signCheckpoint'
import { CURRENT_SCHEMA_VERSION, type AnnalistEvent, type ReplayableStep } from '../../historian/events'
import type { PendingEvent, StoredEvent } from '../../historian/historian'
import { foldTask } from '../../historian/taskState'
import { randomKeyRing } from '../support/databases'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'

const TENANT = 'acme'
const TASK = 'task-1'
const task = { tenantId: TENANT, taskId: TASK }

function stored(pending: readonly PendingEvent[]): StoredEvent[] {
  return pending.map(({ eventId, event }, index) => ({
    eventId,
    streamName: `tenant_${event.metadata.tenantId}-${event.metadata.taskId}`,
    revision: BigInt(index),
    position: BigInt(index + 1),
    tenantSequence: BigInt(index + 1),
    recordedAt: new Date(Date.parse('2026-01-15T09:00:00Z') + index * 1_000),
    event,
  }))
}

/** A whole original run: received(0), routed(1), planned two calls(2), call-1 ok(3), call-2 failed(4), synthesized(5), completed(6). */
function originalRun(tenantId = TENANT, taskId = TASK): StoredEvent[] {
  const f = new TaskEventFactory(tenantId, taskId)
  return stored([
    f.received(),
    f.routingInvoked(),
    f.planCreated(['search', 'fetch']),
    f.toolExecuted('call-1', 'search'),
    f.toolFailed('call-2', 'fetch'),
    f.synthesisInvoked(),
    f.completed({ totalTokens: 1010, totalCostUsd: 0.012, toolCallsSucceeded: 1, toolCallsFailed: 1 }),
  ])
}

/** A TaskRunStarted of run `runId` from `fromStep`, as beginRun records it (the checkpoint fields are not re-checked by the fold). */
function runStarted(events: readonly StoredEvent[], runId: string, fromStep: ReplayableStep): StoredEvent {
  const parentRunId = foldTask(events.map((event) => event.event)).runId!
  const event: AnnalistEvent = {
    type: 'TaskRunStarted',
    data: {
      reason: 'replay',
      parentRunId,
      fromStep,
      requestedBy: 'alice',
      checkpoint: { parentRunId, step: fromStep, revision: 0, stateSha256: 'a'.repeat(64), signature: 'b'.repeat(64) },
      overrides: { models: {}, promptVersions: {} },
    },
    metadata: {
      schemaVersion: CURRENT_SCHEMA_VERSION.TaskRunStarted,
      tenantId: TENANT,
      taskId: TASK,
      workflowId: `agent-pipeline:${TENANT}:${TASK}`,
      runId,
      activityId: 'begin-run',
      attempt: 1,
      correlationId: 'c',
      causationId: null,
      occurredAt: '2026-01-15T10:00:00.000Z',
      classification: 'internal',
    },
  }
  return { eventId: `${runId}-begin`, streamName: events[0]!.streamName, revision: BigInt(events.length), position: BigInt(events.length + 1), tenantSequence: BigInt(events.length + 1), recordedAt: new Date(), event }
}

describe('checkpointAt: the state of the latest run at a step boundary', () => {
  it('takes each boundary at the event that made the run ready for the step, with the hash of the state then', () => {
    const events = originalRun()
    const at = (step: ReplayableStep) => checkpointAt(events, step, task)
    expect([at('route').revision, at('plan').revision, at('tools').revision, at('synthesize').revision]).toEqual([0, 1, 2, 4])
    const synthesize = at('synthesize')
    expect(synthesize.parentRunId).toBe('run-1')
    expect(synthesize.state).toEqual(foldTask(events.slice(0, 5).map((event) => event.event)))
    expect(synthesize.state.currentStep).toBe('synthesize')
    expect(synthesize.state.answer).toBeUndefined()
    expect(synthesize.stateSha256).toBe(taskStateSha256(synthesize.state))
    expect(synthesize.stateSha256).not.toBe(at('tools').stateSha256)
  })

  it('names the step a failed run stopped at when asked for a later boundary', () => {
    const f = new TaskEventFactory(TENANT, TASK)
    const events = stored([f.received(), f.routingInvoked(), f.planningFailed(false), f.failed('plan', 'MODEL_TIMEOUT')])
    expect(checkpointAt(events, 'plan', task).revision).toBe(1)
    expect(() => checkpointAt(events, 'tools', task)).toThrow(StepNotReachedError)
    expect(() => checkpointAt(events, 'tools', task)).toThrow(`run run-1 of task ${TENANT}/${TASK} never reached step tools; it failed at plan`)
    expect(() => checkpointAt([], 'route', task)).toThrow(/has no run/)
  })

  it("follows the latest run: a replay keeps its parent's earlier boundaries and starts its own at fromStep", () => {
    const events = [...originalRun(), runStarted(originalRun(), 'run-2', 'tools')]
    const tools = checkpointAt(events, 'tools', task)
    expect(tools).toMatchObject({ parentRunId: 'run-2', revision: 7 })
    expect(tools.state).toMatchObject({ runId: 'run-2', parentRunId: 'run-1', currentStep: 'tools', toolOutcomes: {} })
    expect(checkpointAt(events, 'plan', task)).toMatchObject({ parentRunId: 'run-2', revision: 1 })
    // The new run has not re-run its tools yet: there is no synthesize boundary of run-2.
    expect(() => checkpointAt(events, 'synthesize', task)).toThrow(/run run-2 .* never reached step synthesize/)
  })
})

describe('signed checkpoints', () => {
  const keyRing = randomKeyRing()

  it('round-trips: a fresh checkpoint verifies against the stream it was taken from', () => {
    const events = originalRun()
    const checkpoint = makeCheckpoint(keyRing, task, events, 'synthesize')
    expect(Checkpoint.parse(checkpoint)).toEqual(checkpoint)
    const { signature, ...unsigned } = checkpoint
    expect(signature).toBe(checkpointSignature(keyRing, unsigned))
    expect(verifyCheckpoint(keyRing, task, JSON.parse(JSON.stringify(checkpoint)), events).boundary.revision).toBe(4)
  })

  it('signs with a tenant-scoped key that is neither the hash-chain key nor another tenant\'s', () => {
    expect(checkpointKey(keyRing, 'acme').equals(keyRing.keyFor('acme'))).toBe(false)
    expect(checkpointKey(keyRing, 'acme').equals(checkpointKey(keyRing, 'globex'))).toBe(false)
    expect(checkpointKey(keyRing, 'acme').equals(checkpointKey(keyRing, 'acme'))).toBe(true)
  })

  const problemOf = (run: () => unknown): CheckpointProblem | 'accepted' => {
    try {
      run()
      return 'accepted'
    } catch (error) {
      expect(error).toBeInstanceOf(CheckpointInvalidError)
      expect((error as CheckpointInvalidError).code).toBe('CHECKPOINT_INVALID')
      return (error as CheckpointInvalidError).problem
    }
  }

  it('refuses any single edited field (property): never accepted, each edit refused for its reason', () => {
    const events = originalRun()
    const checkpoint = makeCheckpoint(keyRing, task, events, 'synthesize')
    const hex = fc.stringMatching(/^[0-9a-f]{64}$/)
    const edits = fc.oneof(
      fc.record({ field: fc.constant('parentRunId' as const), value: fc.string({ minLength: 1 }) }),
      fc.record({ field: fc.constant('step' as const), value: fc.constantFrom('route', 'plan', 'tools') }),
      fc.record({ field: fc.constant('revision' as const), value: fc.nat() }),
      fc.record({ field: fc.constant('stateSha256' as const), value: hex }),
      fc.record({ field: fc.constant('signature' as const), value: hex }),
      fc.record({ field: fc.constant('tenantId' as const), value: fc.stringMatching(/^[a-z0-9_]{1,20}$/) }),
      fc.record({ field: fc.constant('taskId' as const), value: fc.stringMatching(/^[a-z0-9-]{1,20}$/) }),
      fc.record({ field: fc.constant('version' as const), value: fc.integer({ min: 2, max: 9 }) }),
    )
    fc.assert(
      fc.property(edits, ({ field, value }) => {
        fc.pre(checkpoint[field] !== value)
        const problem = problemOf(() => verifyCheckpoint(keyRing, task, { ...checkpoint, [field]: value }, events))
        const expected = field === 'tenantId' || field === 'taskId' ? CheckpointProblem.Foreign : field === 'version' ? CheckpointProblem.Malformed : CheckpointProblem.Tampered
        expect(problem).toBe(expected)
      }),
      { numRuns: 300 },
    )
  })

  it('refuses a foreign-tenant checkpoint, one signed with another key, one of a superseded run, and a stale one', () => {
    const events = originalRun()
    const foreign = makeCheckpoint(keyRing, { tenantId: 'globex', taskId: TASK }, originalRun('globex'), 'synthesize')
    expect(problemOf(() => verifyCheckpoint(keyRing, task, foreign, events))).toBe(CheckpointProblem.Foreign)
    // The foreign checkpoint relabelled as ours no longer matches its signature: our tenant's key did not sign it.
    expect(problemOf(() => verifyCheckpoint(keyRing, task, { ...foreign, tenantId: TENANT }, events))).toBe(CheckpointProblem.Tampered)
    expect(problemOf(() => verifyCheckpoint(randomKeyRing(), task, makeCheckpoint(keyRing, task, events, 'tools'), events))).toBe(CheckpointProblem.Tampered)

    const checkpoint = makeCheckpoint(keyRing, task, events, 'plan')
    const replayed = [...events, runStarted(events, 'run-2', 'synthesize')]
    expect(problemOf(() => verifyCheckpoint(keyRing, task, checkpoint, replayed))).toBe(CheckpointProblem.NotLatestRun)

    // Same run, but the stream no longer says what it said when the checkpoint was signed.
    const f = new TaskEventFactory(TENANT, TASK)
    const rewritten = stored([f.received(), f.routingInvoked('calculation'), f.planCreated(['search', 'fetch']), f.toolExecuted('call-1'), f.toolFailed('call-2')])
    expect(problemOf(() => verifyCheckpoint(keyRing, task, makeCheckpoint(keyRing, task, events, 'synthesize'), rewritten))).toBe(CheckpointProblem.Stale)
    expect(problemOf(() => verifyCheckpoint(keyRing, task, { nonsense: true }, events))).toBe(CheckpointProblem.Malformed)
    expect(problemOf(() => verifyCheckpoint(keyRing, task, makeCheckpoint(keyRing, task, events, 'synthesize'), events))).toBe('accepted')
  })
})
