import { createHash, randomUUID } from 'node:crypto'
import type { NewEvent } from '../historian/port'

const RESPONSE_TEXT =
  'The quarterly incident reports show three outages, all in the payments region. Two were caused by an expired ' +
  'certificate on the card gateway and one by a schema migration that locked the ledger table for eleven minutes. ' +
  'Mean time to recovery fell from 47 to 31 minutes against the previous quarter. Recommended follow-ups: automate ' +
  'certificate rotation, run large migrations with lock timeouts, and page the database on-call for ledger alerts. '

/**
 * An event shaped like a recorded model call (`SynthesisModelInvoked`): about 1 KB of JSON data plus about 0.4 KB of
 * metadata, with a fresh event ID. The benchmarks store these so their figures reflect what the pipeline writes.
 */
export function benchEvent(tenantId: string, taskId: string, sequence: number): NewEvent {
  const workflowId = `agent-pipeline:${tenantId}:${taskId}`
  const prompt = `synthesize ${taskId} ${sequence}`
  return {
    eventId: randomUUID(),
    type: 'SynthesisModelInvoked',
    data: {
      model: { provider: 'openai-compatible', modelId: 'gpt-4.1-mini', modelVersion: '2025-04-14' },
      prompt: {
        templateId: 'synthesize',
        templateVersion: '3',
        ref: `prompt://synthesize/${taskId}/${sequence}`,
        sha256: createHash('sha256').update(prompt).digest('hex'),
      },
      responseText: RESPONSE_TEXT,
      usage: { inputTokens: 1843, outputTokens: 212, costUsd: 0.000864, reported: true },
      latencyMs: 2870,
      finishReason: 'stop',
      systemFingerprint: null,
      callIndex: 0,
      structuredOutput: null,
    },
    metadata: {
      schemaVersion: 2,
      tenantId,
      taskId,
      workflowId,
      runId: '7f9c2ba4-e88f-4c2a-9a4b-6d1b3f0c2e51',
      activityId: String(sequence),
      attempt: 1,
      correlationId: `${tenantId}:${taskId}`,
      causationId: `${workflowId}:${sequence}`,
      occurredAt: new Date(Date.UTC(2026, 0, 15, 9) + sequence * 1_000).toISOString(),
      classification: 'internal',
    },
  }
}
