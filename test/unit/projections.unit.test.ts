import { describe, expect, it } from 'vitest'
import { validateEvent } from '../../historian/events'
import type { PendingEvent } from '../../historian/historian'
import { auditFacts, auditTimelineProjection } from '../../projections/auditTimeline/projection'
import { liveTables, suffixedTables } from '../../projections/projection'
import { ProjectionRunner, ProjectionTimeoutError } from '../../projections/runner'
import { summaryDelta, taskSummaryProjection } from '../../projections/taskSummary/projection'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'

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

  it('records what a failed call used, and whether the provider reported it', () => {
    const billed = auditFacts(valid(f.planningFailed(true, 1, { inputTokens: 1200, outputTokens: 300, costUsd: 0.0048, reported: true })))
    expect(billed).toMatchObject({ inputTokens: 1200, outputTokens: 300, costUsd: 0.0048, usageReported: true })
    expect(auditFacts(valid(f.routingFailed(true)))).toMatchObject({ inputTokens: 40, outputTokens: 0, costUsd: 0, usageReported: false, finishReason: null })
    expect(auditFacts(valid(f.routingInvoked()))).toMatchObject({ usageReported: true, finishReason: 'stop', structuredOutputPath: 'constrained' })
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

  it('adds the reported usage of every call to the totals, and a failed call\'s cost to failedCallCostUsd too', () => {
    expect(summaryDelta(valid(f.planCreated(['a'], { inputTokens: 7, outputTokens: 3, costUsd: 0.5 })))).toMatchObject({
      step: 'plan',
      tokens: 10,
      costUsd: 0.5,
      failedCallCostUsd: 0,
      callsWithoutReportedUsage: 0,
    })
    const billed = { inputTokens: 1200, outputTokens: 300, costUsd: 0.0048, reported: true }
    expect(summaryDelta(valid(f.planningFailed(true, 1, billed)))).toMatchObject({
      step: 'plan',
      modelAttemptsFailed: 1,
      tokens: 1500,
      costUsd: 0.0048,
      failedCallCostUsd: 0.0048,
      callsWithoutReportedUsage: 0,
      estimatedTokens: 0,
    })
  })

  it('keeps a call without reported usage out of the totals: counted, with its estimate apart', () => {
    const timedOut = { inputTokens: 900, outputTokens: 0, costUsd: 0.00225, reported: false }
    expect(summaryDelta(valid(f.routingFailed(true, 1, timedOut)))).toMatchObject({
      step: 'route',
      modelAttemptsFailed: 1,
      tokens: 0,
      costUsd: 0,
      failedCallCostUsd: 0,
      callsWithoutReportedUsage: 1,
      estimatedTokens: 900,
      estimatedCostUsd: 0.00225,
    })
    // A successful call from a server that sends no usage is an estimate too.
    const noUsage = valid(f.synthesisInvoked())
    const unreported = { ...noUsage, data: { ...noUsage.data, usage: { inputTokens: 500, outputTokens: 0, costUsd: 0.001, reported: false } } } as typeof noUsage
    expect(summaryDelta(unreported)).toMatchObject({ tokens: 0, costUsd: 0, callsWithoutReportedUsage: 1, estimatedTokens: 500, estimatedCostUsd: 0.001 })
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
