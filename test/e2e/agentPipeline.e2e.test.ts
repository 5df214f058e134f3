import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { outcomeEventId } from '../../historian/eventIds'
import { AnnalistEvent } from '../../historian/events'
import { verifyChain } from '../../historian/integrity/verifyChain'
import { InvalidIdentifierError, taskStreamName } from '../../historian/streams'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { pipelineWorkflowId } from '../../workflows/api'
import { pipelineHarness, uniqueSuffix, type PipelineHarness } from '../support/pipelineHarness'

describe.each(['postgres', 'pglite'] as const)('agentPipeline on a real Temporal server with the %s historian', (kind) => {
  let harness: PipelineHarness
  const tenant = `acme_${uniqueSuffix()}`
  const account = `globex_${uniqueSuffix()}`

  beforeAll(async () => {
    harness = await pipelineHarness(kind, {
      faults: { rules: [{ target: 'tool:lookup_account', kind: 'malformed', tenantId: account, attempts: [1, 2, 3, 4, 5] }] },
    })
  })
  afterAll(async () => harness?.close())

  it('records exactly the expected events, in order, each valid against its schema, with deterministic IDs', async () => {
    const [result] = await harness.run([{ tenantId: tenant, taskId: 'calc-1', input: 'Calculate (1250 * 12) + 380 for the budget', requestedBy: 'test' }])
    expect(result).toMatchObject({ status: 'completed', route: 'calculation' })
    const recorded = await harness.store.readStream(taskStreamName(tenant, 'calc-1'))
    const types = recorded.map((event) => event.type)
    expect(types[0]).toBe('AgentTaskReceived')
    expect(types.slice(1, 3)).toEqual(['RoutingModelInvoked', 'PlanCreated'])
    const toolEvents = types.slice(3, 3 + result!.toolCalls)
    expect(toolEvents.every((type) => type === 'ToolCallExecuted')).toBe(true)
    expect(types.slice(3 + result!.toolCalls)).toEqual(['SynthesisModelInvoked', 'AgentTaskCompleted'])
    for (const event of recorded) {
      expect(AnnalistEvent.safeParse({ type: event.type, data: event.data, metadata: event.metadata }).success).toBe(true)
      expect(event.metadata).toMatchObject({ tenantId: tenant, taskId: 'calc-1', workflowId: pipelineWorkflowId(tenant, 'calc-1') })
      const { workflowId, runId, activityId } = event.metadata as { workflowId: string; runId: string; activityId: string }
      expect(event.eventId).toBe(outcomeEventId(workflowId, runId, activityId, 0))
    }
    const calculator = recorded.find((event) => event.type === 'ToolCallExecuted')!.data as { result: { value: number } }
    expect(calculator.result.value).toBe(15_380)
    // Parallel tool calls appended concurrently, and the stream's hash chain is still one unbroken line.
    expect(await verifyChain({ store: harness.store, keyRing: harness.keyRing, tenantId: tenant, taskId: 'calc-1' })).toMatchObject({ intact: true, eventsChecked: recorded.length })
  })

  it('records a malformed tool response as ToolCallFailed with a clear error code and still completes the task', async () => {
    const [result] = await harness.run([{ tenantId: account, taskId: 'acct-1', input: 'Look up account ACC-1042 and summarize its balance', requestedBy: 'test' }])
    expect(result).toMatchObject({ status: 'completed' })
    expect(result!.toolCallsFailed).toBeGreaterThanOrEqual(1)
    const failed = (await harness.store.readStream(taskStreamName(account, 'acct-1'))).filter((event) => event.type === 'ToolCallFailed')
    expect(failed).toHaveLength(1)
    expect(failed[0]!.data).toMatchObject({ toolName: 'lookup_account', errorCode: 'TOOL_RESPONSE_MALFORMED' })
    expect((failed[0]!.data as { message: string }).message).toMatch(/balance/i)
  })

  it('starting the same task twice yields one pipeline and one set of events', async () => {
    const input = { tenantId: tenant, taskId: 'twice-1', input: 'Search the knowledge base for the data retention policy', requestedBy: 'test', tuning: { retryInitialIntervalMs: 50 } }
    const first = await startPipeline(harness.client, input, harness.taskQueue)
    const second = await startPipeline(harness.client, input, harness.taskQueue)
    expect(second.firstExecutionRunId).toBe(first.firstExecutionRunId)
    await harness.withWorker(() => first.result())
    const description = await first.describe()
    expect(description.typedSearchAttributes.getAll().map((pair) => [pair.key.name, pair.value])).toEqual(
      expect.arrayContaining([
        ['TenantId', tenant],
        ['TaskId', 'twice-1'],
      ]),
    )
    const events = await harness.store.readStream(taskStreamName(tenant, 'twice-1'))
    expect(events.filter((event) => event.type === 'AgentTaskReceived')).toHaveLength(1)
    expect(new Set(events.map((event) => event.eventId)).size).toBe(events.length)
  })

  it('refuses an invalid tenant ID before anything is started or written', async () => {
    const before = (await harness.store.readAll({ maxCount: 100_000 })).length
    await expect(startPipeline(harness.client, { tenantId: 'Bad-Tenant', taskId: 'x', input: 'hello', requestedBy: 'test' }, harness.taskQueue)).rejects.toThrow(
      InvalidIdentifierError,
    )
    await expect(startPipeline(harness.client, { tenantId: 'Bad-Tenant', taskId: 'x', input: 'hello', requestedBy: 'test' }, harness.taskQueue)).rejects.toThrow(
      /invalid tenant ID "Bad-Tenant"/,
    )
    expect((await harness.store.readAll({ maxCount: 100_000 })).length).toBe(before)
  })

  it('fails a task whose prompt exceeds the context window with AgentTaskFailed, without retrying it', async () => {
    const failing = `initech_${uniqueSuffix()}`
    const local = await pipelineHarness(kind, { faults: { rules: [{ target: 'synthesis', kind: 'context_length', tenantId: failing, attempts: [1, 2, 3, 4] }] } })
    try {
      const [result] = await local.run([{ tenantId: failing, taskId: 'long-1', input: 'Search the knowledge base for the refund policy', requestedBy: 'test' }])
      expect(result).toMatchObject({ status: 'failed', failedStep: 'synthesize', errorCode: 'MODEL_CONTEXT_LENGTH_EXCEEDED' })
      const types = (await local.store.readStream(taskStreamName(failing, 'long-1'))).map((event) => event.type)
      expect(types.filter((type) => type === 'SynthesisModelFailed')).toHaveLength(1)
      expect(types.at(-1)).toBe('AgentTaskFailed')
      // The event tenants read records the status and the provider's code, never the provider's words.
      const failed = (await local.store.readStream(taskStreamName(failing, 'long-1'))).find((event) => event.type === 'SynthesisModelFailed')
      expect((failed?.data as { message: string }).message).toMatch(/prompt exceeds the context window \(HTTP 400, provider code context_length_exceeded\)$/)
      expect((failed?.data as { message: string }).message).not.toMatch(/maximum context length|injected fault/)
    } finally {
      await local.close()
    }
  })
})
