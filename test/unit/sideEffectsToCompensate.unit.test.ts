import { describe, expect, it } from 'vitest'
import { sideEffectsToCompensate } from '../../activities/compensateToolCall'
import { calculatorTool } from '../../activities/tools/calculator'
import { ToolRegistry } from '../../activities/tools/registry'
import { defineTool } from '../../activities/tools/tool'
import type { StoredEvent, TaskStream } from '../../historian/historian'
import { z } from 'zod'

/** A side-effecting tool that can undo its effect, and one that cannot. */
const undoable = defineTool({ name: 'notify', description: '', parameters: z.object({}), result: z.unknown(), sideEffect: true, execute: async () => ({}), compensate: async () => ({ compensationId: 'x' }) })
const permanent = defineTool({ name: 'wire_money', description: '', parameters: z.object({}), result: z.unknown(), sideEffect: true, execute: async () => ({}) })
const tools = new ToolRegistry([undoable, permanent, calculatorTool])

/** A stream of `events` (type and data only; what sideEffectsToCompensate reads, plus the metadata keys derive from). */
function stream(events: readonly [type: string, data: Record<string, unknown>][]): TaskStream {
  const stored = events.map(([type, data], index) => ({
    eventId: `event-${index}`,
    revision: BigInt(index),
    event: { type, data: { parameters: {}, idempotencyKey: `key-${index}`, latencyMs: 1, ...data }, metadata: { workflowId: 'wf', runId: 'run', activityId: `activity-${index}` } },
  }))
  return { streamName: 'tenant_t-k', events: stored as unknown as StoredEvent[], revision: BigInt(events.length - 1) }
}

const executed = (toolCallId: string, toolName: string, sideEffectId: string | null) => ['ToolCallExecuted', { toolCallId, toolName, sideEffectId, result: {} }] as [string, Record<string, unknown>]
const failed = (toolCallId: string, toolName: string, sideEffectId: string | null) =>
  ['ToolCallFailed', { toolCallId, toolName, sideEffectId, errorCode: 'TOOL_RESPONSE_MALFORMED', message: 'bad' }] as [string, Record<string, unknown>]

describe('sideEffectsToCompensate', () => {
  it("lists the run's undoable side effects, failed calls' included, in recorded order, leaving out what cannot or need not be undone", () => {
    const events = stream([
      ['AgentTaskReceived', {}],
      executed('t1', 'notify', 'outbox:1'),
      executed('t2', 'calculator', null),
      failed('t3', 'notify', 'outbox:3'),
      failed('t4', 'notify', null),
      executed('t5', 'wire_money', 'wire:5'),
      executed('t6', 'notify', 'outbox:6'),
      ['ToolCallCompensated', { toolCallId: 't6', toolName: 'notify', sideEffectId: 'outbox:6', compensationId: 'outbox:7' }],
    ])
    expect(sideEffectsToCompensate(events, tools)).toEqual([
      { toolCallId: 't1', sideEffectId: 'outbox:1' },
      { toolCallId: 't3', sideEffectId: 'outbox:3' },
    ])
  })

  it('leaves out the side effects of earlier runs: a redriven run undoes only its own', () => {
    const events = stream([['AgentTaskReceived', {}], executed('t1', 'notify', 'outbox:1'), ['AgentTaskFailed', {}], ['TaskRunStarted', {}], executed('t2', 'notify', 'outbox:2')])
    expect(sideEffectsToCompensate(events, tools)).toEqual([{ toolCallId: 't2', sideEffectId: 'outbox:2' }])
  })

  it('counts a compensation that failed as answered: it is recorded, and someone must look at it', () => {
    const events = stream([
      ['AgentTaskReceived', {}],
      executed('t1', 'notify', 'outbox:1'),
      ['ToolCompensationFailed', { toolCallId: 't1', toolName: 'notify', sideEffectId: 'outbox:1', errorCode: 'COMPENSATION_TIMEOUT', message: 'gave up' }],
    ])
    expect(sideEffectsToCompensate(events, tools)).toEqual([])
  })
})
