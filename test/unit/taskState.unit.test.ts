import { createHash } from 'node:crypto'
import canonicalize from 'canonicalize'
import { describe, expect, it } from 'vitest'
import { parseStateTarget } from '../../cli/commands/state'
import { readEvent, validateEvent } from '../../historian/events'
import { DEFAULT_SNAPSHOT_POLICY, snapshotDue, snapshotPolicy, SnapshotPolicyError } from '../../historian/snapshots/snapshotPolicy'
import { evolve, foldTask, initialTaskState, TASK_STATE_VERSION, TaskStateSchema, type TaskState } from '../../historian/taskState'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'
import { loadV1TaskStream } from '../support/v1Fixture'

const events = loadV1TaskStream().events.map((stored) => readEvent(stored))

/** A task that fails, so the fingerprint below covers the branches of evolve the fixture's happy path does not. */
function failingTask() {
  const f = new TaskEventFactory('acme', 'task-fails')
  const pending = [f.received(), f.routingInvoked('account'), f.planningFailed(true, 1, { inputTokens: 300, outputTokens: 120, costUsd: 0.0019, reported: true }), f.planCreated(), f.toolExecuted(), f.toolFailed(), f.synthesisFailed(false), f.failed('synthesize', 'MODEL_PROVIDER_ERROR')]
  return pending.map(({ event }) => validateEvent(event))
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    Object.freeze(value)
    for (const inner of Object.values(value)) deepFreeze(inner)
  }
  return value
}

describe('foldTask / evolve', () => {
  it('folds the v1 fixture into the state its completion event reports', () => {
    const state = foldTask(events)
    const completed = events[events.length - 1]!
    expect(completed.type).toBe('AgentTaskCompleted')
    if (completed.type !== 'AgentTaskCompleted') return
    expect(state).toMatchObject({
      status: 'completed',
      currentStep: 'complete',
      route: 'notification',
      candidateRoutes: ['research', 'calculation', 'notification', 'account', 'general'],
      totalTokens: completed.data.totalTokens,
      totalCostUsd: completed.data.totalCostUsd,
      answer: completed.data.answer,
      modelAttemptsFailed: 1,
      eventsApplied: events.length,
      lastOccurredAt: completed.metadata.occurredAt,
    })
    expect(Object.values(state.toolOutcomes).filter((outcome) => outcome.ok)).toHaveLength(completed.data.toolCallsSucceeded)
  })

  it('is pure: folding never changes the state or events it is given, and the same events give the same state', () => {
    const frozenEvents = deepFreeze(structuredClone(events))
    const start = deepFreeze(structuredClone(initialTaskState))
    const first = foldTask(frozenEvents, start)
    expect(foldTask(frozenEvents, start)).toEqual(first)
    expect(start).toEqual(initialTaskState)
    // Folding in two halves from an intermediate state is the same as folding at once: what snapshots rely on.
    const half = foldTask(frozenEvents.slice(0, 3))
    expect(foldTask(frozenEvents.slice(3), half)).toEqual(first)
  })

  it('TASK_STATE_VERSION matches the fold: if this fails, you changed TaskState or evolve, so bump the version', () => {
    // Snapshots folded by an older evolve must stop being trusted when the fold changes; bumping the version does that.
    const folded = [foldTask(events), foldTask(failingTask())]
    expect(folded[1]).toMatchObject({ status: 'failed', failedStep: 'synthesize', modelAttemptsFailed: 2, currentStep: 'synthesize' })
    const fingerprint = createHash('sha256').update(canonicalize(folded)!).digest('hex')
    expect({ version: TASK_STATE_VERSION, fingerprint }).toEqual({ version: 4, fingerprint: '1b16547d475f2d438dd6f84265b04a5e3ff4cb7b5e37c15359cf3aa313f99da0' })
  })
})

describe('TaskStateSchema (what a snapshot must match to be trusted)', () => {
  it('accepts every state the fold produces, also after a JSON round trip', () => {
    let state: TaskState = initialTaskState
    for (const event of events) {
      state = evolve(state, event)
      expect(TaskStateSchema.parse(JSON.parse(JSON.stringify(state)))).toEqual(state)
    }
  })

  it('refuses states that are not task states', () => {
    expect(TaskStateSchema.safeParse({ ...initialTaskState, status: 'paused' }).success).toBe(false)
    expect(TaskStateSchema.safeParse({ ...initialTaskState, eventsApplied: -1 }).success).toBe(false)
    expect(TaskStateSchema.safeParse({ ...initialTaskState, toolOutcomes: { t1: { ok: true } } }).success).toBe(false)
    expect(TaskStateSchema.safeParse('{}').success).toBe(false)
  })
})

describe('snapshot policy', () => {
  it('defaults to every 50 events or 256 KiB of event data', () => {
    expect(DEFAULT_SNAPSHOT_POLICY).toEqual({ everyEvents: 50, everyBytes: 262_144 })
    expect(snapshotPolicy()).toEqual(DEFAULT_SNAPSHOT_POLICY)
    expect(snapshotDue(DEFAULT_SNAPSHOT_POLICY, { events: 49, bytes: 262_143 })).toBe(false)
    expect(snapshotDue(DEFAULT_SNAPSHOT_POLICY, { events: 50, bytes: 0 })).toBe(true)
    expect(snapshotDue(DEFAULT_SNAPSHOT_POLICY, { events: 1, bytes: 262_144 })).toBe(true)
  })

  it('refuses thresholds that are not whole numbers >= 1, naming the field', () => {
    expect(() => snapshotPolicy({ everyEvents: 0 })).toThrow(SnapshotPolicyError)
    expect(() => snapshotPolicy({ everyBytes: 1.5 })).toThrow(/everyBytes must be a whole number >= 1, got 1.5/)
  })
})

describe('annalist state --at', () => {
  it('reads a whole number as a revision and an ISO time with a zone as a timestamp', () => {
    expect(parseStateTarget(undefined)).toBeUndefined()
    expect(parseStateTarget('0')).toEqual({ revision: 0n })
    expect(parseStateTarget('123456789012')).toEqual({ revision: 123_456_789_012n })
    expect(parseStateTarget('2026-02-03T14:22:10Z')).toEqual({ timestamp: new Date('2026-02-03T14:22:10.000Z') })
    expect(parseStateTarget('2026-02-03T15:22:10.5+01:00')).toEqual({ timestamp: new Date('2026-02-03T14:22:10.500Z') })
  })

  it('refuses anything else with a message saying what is expected', () => {
    for (const bad of ['-1', '1.5', 'yesterday', '2026-02-03', '2026-02-03T14:22:10', '']) {
      expect(() => parseStateTarget(bad)).toThrow(/^--at must be a revision \(a whole number >= 0\) or an ISO 8601 time with a zone/)
    }
  })
})
