import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { ModelClient } from '../../activities/models/modelClient'
import { ModelConfig, modelsFromConfig, type ModelConfigInput } from '../../activities/models/modelsFromConfig'
import { resolveOutputDialect } from '../../activities/models/outputProbe'
import { planningReplySchema } from '../../activities/models/planSchemas'
import { RoutingReply } from '../../activities/models/prompts'
import { createDefaultTools } from '../../activities/tools/registry'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { verifyRun } from '../../cli/runtime/verifyRun'
import type { ModelFailure, OutputDialect } from '../../historian/events'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian } from '../../historian/historian'
import type { TaskRef } from '../../workflows/api'
import { pipelineHarness, uniqueSuffix, type PipelineHarness } from '../support/pipelineHarness'
import { mayRunWithoutRealModel, requireRealModelServer } from '../support/realModelServer'
import { eventsOfType } from '../support/storedEvents'
import { supervisedWorker, type SupervisedWorker } from '../support/supervisedWorker'

/** The server handles one request at a time: every call may wait behind the others, so timeouts are generous. */
const MODEL_TIMEOUT_MS = 120_000
const TASKS = [
  'Calculate (1250 * 12) + 380 for the budget',
  'Search the knowledge base for the data retention policy',
  'Look up account ACC-1042 and summarize its balance',
]

function realModelConfig(dialect: OutputDialect | 'auto', ledgerPath?: string): ModelConfigInput {
  const server = requireRealModelServer()
  return {
    provider: 'openai-compatible',
    baseURL: server.baseURL,
    models: { routing: server.modelId, planning: server.modelId, synthesis: server.modelId },
    outputDialect: dialect,
    timeoutMs: MODEL_TIMEOUT_MS,
    ...(ledgerPath === undefined ? {} : { ledgerPath }),
  }
}

/**
 * Pipelines on a real OpenAI-compatible inference server (llama-cpp-python with SmolLM2-135M in CI), a real Temporal dev
 * server and PostgreSQL. The model's judgement is not under test: the shapes, the records and the crash safety are.
 */
describe.skipIf(mayRunWithoutRealModel())('pipelines on a real model server', () => {
  describe('with structured output', () => {
    let harness: PipelineHarness
    let dialect: OutputDialect
    beforeAll(async () => {
      const config = realModelConfig('auto')
      dialect = (await resolveOutputDialect(ModelConfig.parse(config))).dialect
      harness = await pipelineHarness('postgres', { models: new ModelClient(modelsFromConfig(config, { dialect })) })
    }, 120_000)
    afterAll(async () => harness?.close())

    it('completes every task with schema-valid routes and plans, recorded with the verified dialect and their usage', { timeout: 900_000 }, async () => {
      expect(dialect).not.toBe('prompt')
      const tenantId = `real_${uniqueSuffix()}`
      const results = await harness.run(TASKS.map((input, index) => ({ tenantId, taskId: `task-${index}`, input, requestedBy: 'real-model-test', tuning: { retryInitialIntervalMs: 100 } })))
      expect(results.map((result) => result.status)).toEqual(TASKS.map(() => 'completed'))
      const tools = createDefaultTools({ pool: harness.database.pool })
      for (const index of TASKS.keys()) {
        const { events } = await harness.historian.readTask(tenantId, `task-${index}`)
        const [routed] = eventsOfType(events, 'RoutingModelInvoked')
        const [planned] = eventsOfType(events, 'PlanCreated')
        expect(routed && planned, `task ${index} was routed and planned`).toBeTruthy()
        expect(RoutingReply.safeParse({ route: routed!.event.data.route }).success).toBe(true)
        expect(planningReplySchema(tools).safeParse({ toolCalls: planned!.event.data.toolCalls }).success).toBe(true)
        for (const stored of [routed!, planned!]) {
          expect(stored.event.data.structuredOutput?.dialect).toBe(dialect)
          expect(stored.event.data.usage).toMatchObject({ reported: true })
          expect(stored.event.data.usage.inputTokens).toBeGreaterThan(0)
        }
        console.log(`real model routed ${JSON.stringify(TASKS[index])} to ${routed!.event.data.route} (${routed!.event.data.structuredOutput?.path}), planned ${planned!.event.data.toolCalls.map((call) => call.toolName).join(', ') || 'no tool calls'}`)
      }
    })
  })

  describe('with plain prompting', () => {
    let harness: PipelineHarness
    beforeAll(async () => {
      harness = await pipelineHarness('postgres', { models: new ModelClient(modelsFromConfig(realModelConfig('prompt'), { dialect: 'prompt' })) })
    })
    afterAll(async () => harness?.close())

    it('records unusable replies as failed calls with their reported usage and the reply, before the repair re-asks', { timeout: 900_000 }, async () => {
      const tenantId = `plain_${uniqueSuffix()}`
      await harness.run([{ tenantId, taskId: 'routed', input: TASKS[0]!, requestedBy: 'real-model-test', tuning: { retryInitialIntervalMs: 100 } }])
      const { events } = await harness.historian.readTask(tenantId, 'routed')
      const failures = [...eventsOfType(events, 'RoutingModelFailed'), ...eventsOfType(events, 'PlanningModelFailed')].map((stored) => stored.event.data as ModelFailure)
      const unusable = failures.filter((failure) => failure.errorCode === 'MODEL_OUTPUT_MALFORMED' || failure.errorCode === 'MODEL_OUTPUT_TRUNCATED')
      expect(unusable.length).toBeGreaterThan(0)
      for (const failure of unusable) {
        expect(failure.dialect).toBe('prompt')
        expect(failure.usage.reported).toBe(true)
        expect(failure.usage.inputTokens).toBeGreaterThan(0)
        expect(failure.usage.outputTokens).toBeGreaterThan(0)
        expect(failure.responseText).not.toBeNull()
        expect(failure.message).not.toContain(failure.responseText!.slice(0, 40))
      }
      // Every first unusable reply of a step was followed by that step's one repair call.
      expect(unusable.some((failure) => failure.willRepair)).toBe(true)
      const repaired = events.filter((stored) => 'structuredOutput' in stored.event.data && (stored.event.data as { structuredOutput: { path: string } | null }).structuredOutput?.path === 'repaired')
      const repairFailures = failures.filter((failure) => failure.isRepair)
      expect(repaired.length + repairFailures.length).toBeGreaterThan(0)
    })
  })

  describe('a worker SIGKILLed while a real inference is in flight', () => {
    let rig: SupervisedWorker
    beforeAll(async () => {
      const server = requireRealModelServer()
      rig = await supervisedWorker({
        kind: 'postgres server',
        faults: { rules: [] },
        taskQueuePrefix: 'real-crash',
        env: {
          ANNALIST_MODEL_PROVIDER: 'openai-compatible',
          ANNALIST_OPENAI_BASE_URL: server.baseURL,
          ANNALIST_MODEL_ROUTING: server.modelId,
          ANNALIST_MODEL_PLANNING: server.modelId,
          ANNALIST_MODEL_SYNTHESIS: server.modelId,
          ANNALIST_MODEL_TIMEOUT_MS: String(MODEL_TIMEOUT_MS),
        },
      })
    })
    afterAll(async () => rig?.close())

    it('completes the pipeline, makes no recorded call again, and keeps the chain intact', { timeout: 900_000 }, async () => {
      const { client, worker, ledgerPath, taskQueue } = rig
      worker.start()
      const task: TaskRef = { tenantId: `realcrash_${uniqueSuffix()}`, taskId: 'killed-mid-plan' }
      const handle = await startPipeline(client, { ...task, input: TASKS[2]!, requestedBy: 'real-model-test', tuning: { heartbeatTimeoutMs: 5_000, retryInitialIntervalMs: 100 } }, taskQueue)
      // The ledger line is written before the request leaves: once it is there, the planner's inference is in flight.
      await vi.waitFor(() => expect(readModelLedger(ledgerPath).some((call) => call.taskId === task.taskId && call.role === 'planning')).toBe(true), { timeout: 300_000, interval: 20 })
      worker.kill('SIGKILL')
      const result = await handle.result()
      expect(result.status).toBe('completed')
      expect(worker.unplannedExits.length).toBeGreaterThanOrEqual(1)

      const store = new PostgresEventStore(rig.database)
      try {
        const historian = new Historian(store, { keyRing: rig.keyRing })
        const verification = await verifyRun({ historian, pool: rig.database.pool, tasks: [task], ledger: readModelLedger(ledgerPath), keyRing: rig.keyRing })
        expect(verification.modelCallsRepeatedAfterCrash).toBe(0)
        expect(verification.chainsIntact).toBe(true)
        expect(verification.tasksWithoutTerminalEvent).toBe(0)
        // The ledger saw the killed planning call and the one made after the restart: the crash was real.
        expect(readModelLedger(ledgerPath).filter((call) => call.taskId === task.taskId && call.role === 'planning').length).toBeGreaterThanOrEqual(2)
      } finally {
        await store.close()
      }
    })
  })
})
