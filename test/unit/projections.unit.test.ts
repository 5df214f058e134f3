import { describe, expect, it } from 'vitest'
import { validateEvent } from '../../historian/events'
import type { PendingEvent } from '../../historian/historian'
import { auditFacts, auditTimelineProjection } from '../../projections/auditTimeline/projection'
import { liveTables, suffixedTables } from '../../projections/projection'
import { ProjectionRunner, ProjectionTimeoutError } from '../../projections/runner'
import { summaryDelta, taskSummaryProjection } from '../../projections/taskSummary/projection'
import { TaskEventFactory } from '../support/eventFactory'

const valid = (pending: PendingEvent) => validateEvent(pending.event)

describe('audit timeline facts', () => {
  const f = new TaskEventFactory('acme', 'task-1')

  it('names the routing model, its version and the route it chose', () => {
    const facts = auditFacts(valid(f.routingInvoked('research')))
    expect(facts.summary).toBe("routing model scripted-router@2026-01 chose route 'research'")
    expect(facts).toMatchObject({ route: 'research', inputTokens: 100, outputTokens: 10, costUsd: 0.0011, latencyMs: 120 })
    expect(facts.model).toEqual({ provider: 'scripted', modelId: 'scripted-router', modelVersion: '2026-01' })
    expect(facts.prompt?.templateId).toBe('route')
  })

  it('says whether a failed model attempt will be retried', () => {
    expect(auditFacts(valid(f.planningFailed(true, 1))).summary).toBe('planning model scripted-planner@2026-01 failed with MODEL_OUTPUT_MALFORMED (attempt 1, will retry)')
    const last = auditFacts(valid(f.synthesisFailed(false, 3)))
    expect(last).toMatchObject({ errorCode: 'MODEL_PROVIDER_ERROR', willRetry: false })
    expect(last.summary).toContain('giving up')
  })

  it('flattens tool facts without copying parameters or results into the summary', () => {
    const facts = auditFacts(valid(f.toolExecuted('call-1', 'search', 'refund-77')))
    expect(facts).toMatchObject({ toolName: 'search', toolCallId: 'call-1', idempotencyKey: 'idem-task-1-call-1', sideEffectId: 'refund-77' })
    expect(facts.summary).toBe('tool search (call call-1) succeeded with side effect refund-77')
    expect(facts.summary).not.toContain('incidents')
    expect(auditFacts(valid(f.toolFailed('call-2', 'fetch'))).errorCode).toBe('TOOL_TIMEOUT')
  })

  it('keeps the task input out of the summary', () => {
    const facts = auditFacts(valid(f.received('secret plans for world domination')))
    expect(facts.summary).not.toContain('secret')
    expect(facts.summary).toContain('analyst@example.test')
  })
})

describe('task summary deltas', () => {
  const f = new TaskEventFactory('acme', 'task-2')

  it('sums tokens and cost of successful model calls only', () => {
    expect(summaryDelta(valid(f.planCreated(['a'], { inputTokens: 7, outputTokens: 3, costUsd: 0.5 })))).toMatchObject({ step: 'plan', tokens: 10, costUsd: 0.5 })
    expect(summaryDelta(valid(f.routingFailed(true)))).toMatchObject({ step: 'route', tokens: 0, modelAttemptsFailed: 1 })
  })

  it('records the failed step and error code of a failed task', () => {
    expect(summaryDelta(valid(f.failed('tools', 'TOOLS_ALL_FAILED')))).toMatchObject({
      status: 'failed',
      step: 'tools',
      failedStep: 'tools',
      errorCode: 'TOOLS_ALL_FAILED',
    })
  })

  it('describes each model use by role, model and template', () => {
    expect(summaryDelta(valid(f.synthesisInvoked())).modelUsed).toEqual({
      role: 'synthesis',
      provider: 'scripted',
      modelId: 'scripted-writer',
      modelVersion: '2026-02',
      templateId: 'synthesize',
      templateVersion: '1',
    })
  })
})

describe('projection tables', () => {
  it('maps live tables to quoted identifiers, and rebuild tables to a suffixed copy', () => {
    expect(liveTables(auditTimelineProjection())).toEqual({ audit_timeline: '"audit_timeline"' })
    expect(suffixedTables(taskSummaryProjection(), '_rebuild_ab12')).toEqual({ task_summary: '"task_summary_rebuild_ab12"' })
  })

  it('refuses a suffix that is not a plain identifier', () => {
    expect(() => suffixedTables(taskSummaryProjection(), '"; drop table x; --')).toThrow(/must match/)
  })
})

describe('ProjectionRunner options', () => {
  const deps = { store: {} as never, pool: {} as never }

  it('rejects duplicate projection names and nonsensical sizes', () => {
    expect(() => new ProjectionRunner({ ...deps, projections: [auditTimelineProjection(), auditTimelineProjection()] })).toThrow(/used twice/)
    expect(() => new ProjectionRunner({ ...deps, projections: [], batchSize: 0 })).toThrow(/batchSize/)
    expect(() => new ProjectionRunner({ ...deps, projections: [], pollIntervalMs: 0 })).toThrow(/pollIntervalMs/)
  })

  it('names the lagging projections when a wait times out', () => {
    const error = new ProjectionTimeoutError(10n, 500, { audit_timeline: 10n, task_summary: 4n })
    expect(error.message).toContain('task_summary at 4')
    expect(error.message).not.toContain('audit_timeline at')
  })
})
