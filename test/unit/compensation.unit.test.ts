import { ActivityFailure, ApplicationFailure, RetryState } from '@temporalio/common'
import { describe, expect, it } from 'vitest'
import type { CompensateToolCallInput, CompensateToolCallResult } from '../../activities/compensateToolCall'
import { compensateSideEffects, noteSideEffect, type PerformedSideEffect } from '../../workflows/compensation'

const task = { tenantId: 'acme', taskId: 'k1' }

/** Records which activity IDs were asked for and answers with `answer` for each tool call. */
function compensator(answer: (toolCallId: string) => Promise<CompensateToolCallResult>) {
  const calls: string[] = []
  const proxy = (activityId: string) => ({
    compensateToolCall: async (input: CompensateToolCallInput) => {
      calls.push(activityId)
      expect(input).toEqual({ ...task, toolCallId: activityId.replace('compensate:', '') })
      return answer(input.toolCallId)
    },
  })
  return { calls, proxy }
}

describe('noteSideEffect', () => {
  it('notes only successful calls whose tool can undo their side effect, in the order they are noted', () => {
    const performed: PerformedSideEffect[] = []
    const outcome = { ok: true, eventId: 'e3', sideEffectId: 'outbox:3', compensable: true }
    expect(noteSideEffect(performed, 't3', outcome)).toBe(outcome)
    noteSideEffect(performed, 't1', { ok: true, eventId: 'e1', compensable: false })
    noteSideEffect(performed, 't4', { ok: false, eventId: 'e4', sideEffectId: 'outbox:4', compensable: true })
    noteSideEffect(performed, 't2', { ok: true, eventId: 'e2', sideEffectId: 'outbox:2', compensable: true })
    // Results recorded by activities from before compensations carry neither field.
    noteSideEffect(performed, 't5', { ok: true, eventId: 'e5' })
    expect(performed).toEqual([
      { toolCallId: 't3', sideEffectId: 'outbox:3' },
      { toolCallId: 't2', sideEffectId: 'outbox:2' },
    ])
  })
})

describe('compensateSideEffects', () => {
  const performed = [
    { toolCallId: 't1', sideEffectId: 'outbox:1' },
    { toolCallId: 't2', sideEffectId: 'outbox:2' },
    { toolCallId: 't3', sideEffectId: 'outbox:3' },
  ]

  it('compensates the most recent side effect first, one at a time, one activity per side effect', async () => {
    let inFlight = 0
    const { calls, proxy } = compensator(async (toolCallId) => {
      inFlight++
      expect(inFlight).toBe(1)
      await new Promise((resolve) => setImmediate(resolve))
      inFlight--
      return { ok: true, compensationId: `undo:${toolCallId}`, eventId: `e-${toolCallId}` }
    })
    expect(await compensateSideEffects(task, performed, proxy)).toEqual({ compensated: ['t3', 't2', 't1'], failed: [] })
    expect(calls).toEqual(['compensate:t3', 'compensate:t2', 'compensate:t1'])
  })

  it('goes on after a compensation that failed for good, so the task failure is still recorded', async () => {
    const { calls, proxy } = compensator(async (toolCallId) => {
      if (toolCallId === 't3') return { ok: false, errorCode: 'COMPENSATION_ERROR', eventId: 'e3' }
      if (toolCallId === 't2') throw new ActivityFailure('activity failed', 'compensateToolCall', 'compensate:t2', RetryState.MAXIMUM_ATTEMPTS_REACHED, 'worker', ApplicationFailure.create({ message: 'boom' }))
      return { ok: true, compensationId: 'undo:t1', eventId: 'e1' }
    })
    expect(await compensateSideEffects(task, performed, proxy)).toEqual({ compensated: ['t1'], failed: ['t3', 't2'] })
    expect(calls).toEqual(['compensate:t3', 'compensate:t2', 'compensate:t1'])
  })

  it('does not swallow errors that are not activity failures (a bug in the workflow must surface)', async () => {
    const { proxy } = compensator(async () => {
      throw new TypeError('not an activity failure')
    })
    await expect(compensateSideEffects(task, performed, proxy)).rejects.toThrow(TypeError)
  })

  it('runs nothing when the run performed no side effect', async () => {
    const { calls, proxy } = compensator(async () => ({ ok: true, compensationId: 'x', eventId: 'e' }))
    expect(await compensateSideEffects(task, [], proxy)).toEqual({ compensated: [], failed: [] })
    expect(calls).toEqual([])
  })
})
