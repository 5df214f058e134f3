import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { MockActivityEnvironment } from '@temporalio/testing'
import { activityInterceptors } from '../../activities/activityInterceptors'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ModelClient } from '../../activities/models/modelClient'
import { modelsFromConfig } from '../../activities/models/modelsFromConfig'
import { createActivities } from '../../activities/pipelineActivities'
import { createDefaultTools } from '../../activities/tools/registry'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { outcomeEventId } from '../../historian/eventIds'
import { EventSchemaError } from '../../historian/events'
import { Historian } from '../../historian/historian'
import { verifyChain } from '../../historian/integrity/verifyChain'
import { taskStreamName } from '../../historian/streams'
import { freshPgliteDatabase, freshPostgresDatabase, randomKeyRing } from '../support/databases'
import { uniqueSuffix } from '../support/pipelineHarness'

const WORKFLOW_ID = 'agent-pipeline:test'
const RUN_ID = '11111111-2222-4333-8444-555555555555'

/** A mock activity context with a known workflow execution, activity ID and attempt, so event IDs are predictable. */
function environment(activityId: string, attempt: number) {
  const env = new MockActivityEnvironment({
    workflowExecution: { workflowId: WORKFLOW_ID, runId: RUN_ID },
    activityId,
    attempt,
    heartbeatTimeoutMs: 10_000,
    retryPolicy: { maximumAttempts: 4 },
  }, { interceptors: activityInterceptors })
  return {
    run: <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => env.run(fn, ...args) as Promise<R>,
  }
}

describe.each(['postgres', 'pglite'] as const)('activities in their idempotent boundary (%s)', (kind) => {
  let database: Database
  let historian: Historian
  let ledgerPath: string
  let activities: ReturnType<typeof createActivities>

  beforeAll(async () => {
    database = kind === 'postgres' ? await freshPostgresDatabase() : await freshPgliteDatabase()
    historian = new Historian(new PostgresEventStore(database), { keyRing: randomKeyRing() })
    ledgerPath = path.join(mkdtempSync(path.join(tmpdir(), 'annalist-ledger-')), 'calls.jsonl')
    activities = createActivities({
      historian,
      models: new ModelClient(modelsFromConfig({ provider: 'scripted', latencyMs: 50, ledgerPath })),
      tools: createDefaultTools({ pool: database.pool }),
      clock: () => new Date(),
    })
  })
  afterAll(async () => {
    await historian?.store.close()
    await database?.close()
  })

  async function received(tenantId: string, taskId: string) {
    await environment('receive', 1).run(activities.receiveTask, { tenantId, taskId, input: 'Notify the on-call team that the export finished', requestedBy: 'test' })
  }

  it('a retried activity whose outcome is stored returns it without calling the model again or appending', async () => {
    const tenantId = `t_${uniqueSuffix()}`
    await received(tenantId, 'k1')
    const first = await environment('route', 1).run(activities.routeTask, { tenantId, taskId: 'k1' })
    const eventsAfterFirst = await historian.readTask(tenantId, 'k1')
    const retried = await environment('route', 2).run(activities.routeTask, { tenantId, taskId: 'k1' })
    expect(retried).toEqual(first)
    expect(first.eventId).toBe(outcomeEventId(WORKFLOW_ID, RUN_ID, 'route', 0))
    expect((await historian.readTask(tenantId, 'k1')).events).toHaveLength(eventsAfterFirst.events.length)
    const calls = readModelLedger(ledgerPath).filter((call) => call.tenantId === tenantId && call.role === 'routing')
    expect(calls).toHaveLength(1)
  })

  it('two attempts of the same activity appending at once leave one set of events and agree on the result', async () => {
    const tenantId = `t_${uniqueSuffix()}`
    await received(tenantId, 'k2')
    await environment('route', 1).run(activities.routeTask, { tenantId, taskId: 'k2' })
    const [a, b] = await Promise.all([
      environment('plan', 1).run(activities.planTask, { tenantId, taskId: 'k2' }),
      environment('plan', 2).run(activities.planTask, { tenantId, taskId: 'k2' }),
    ])
    expect(a).toEqual(b)
    const stream = await historian.readTask(tenantId, 'k2')
    expect(stream.events.filter((stored) => stored.event.type === 'PlanCreated')).toHaveLength(1)
    expect(new Set(stream.events.map((stored) => stored.eventId)).size).toBe(stream.events.length)
    expect(await verifyChain({ store: historian.store, keyRing: historian.keyRing!, tenantId, taskId: 'k2' })).toMatchObject({ intact: true, eventsChecked: stream.events.length })
  })

  it('concurrent attempts of a side-effecting tool call leave one outbox row and one event', async () => {
    const tenantId = `t_${uniqueSuffix()}`
    await received(tenantId, 'k3')
    await environment('route', 1).run(activities.routeTask, { tenantId, taskId: 'k3' })
    const plan = await environment('plan', 1).run(activities.planTask, { tenantId, taskId: 'k3' })
    const stream = await historian.readTask(tenantId, 'k3')
    const planned = stream.events.find((stored) => stored.event.type === 'PlanCreated')!.event
    const notify = planned.type === 'PlanCreated' ? planned.data.toolCalls.find((call) => call.toolName === 'send_notification') : undefined
    expect(notify, `plan ${JSON.stringify(plan)} has a notification`).toBeDefined()
    const activityId = `tool:${notify!.toolCallId}`
    const outcomes = await Promise.all([1, 2, 3].map((attempt) => environment(activityId, attempt).run(activities.executeToolCall, { tenantId, taskId: 'k3', toolCallId: notify!.toolCallId })))
    expect(new Set(outcomes.map((outcome) => outcome.eventId)).size).toBe(1)
    const rows = await database.pool.query('select count(*)::int as n from tool_outbox where tenant_id = $1', [tenantId])
    expect(rows.rows[0].n).toBe(1)
    const executed = (await historian.readTask(tenantId, 'k3')).events.filter((stored) => stored.event.type === 'ToolCallExecuted')
    expect(executed).toHaveLength(1)
  })

  it('an event that fails its schema is refused with a clear error and nothing is written', async () => {
    const tenantId = `t_${uniqueSuffix()}`
    await received(tenantId, 'k4')
    const before = await historian.readTask(tenantId, 'k4')
    const broken = { ...before.events[0]!.event, data: { input: '', inputSha256: 'not-a-hash', requestedBy: 'x' } }
    const attempt = historian.appendToTask(tenantId, 'k4', [{ eventId: '0b7d1c8e-2f1a-5b3c-9d4e-5f6a7b8c9d0e', event: broken as never }], before)
    await expect(attempt).rejects.toThrow(EventSchemaError)
    await expect(historian.appendToTask(tenantId, 'k4', [{ eventId: '0b7d1c8e-2f1a-5b3c-9d4e-5f6a7b8c9d0e', event: broken as never }], before)).rejects.toThrow(
      /AgentTaskReceived fails its schema: data\.input/,
    )
    expect((await historian.store.readStream(taskStreamName(tenantId, 'k4'))).length).toBe(before.events.length)
  })

  it('an invalid tenant ID is refused before any read or write', async () => {
    await expect(environment('receive', 1).run(activities.receiveTask, { tenantId: 'ACME-1', taskId: 'k5', input: 'x', requestedBy: 'test' })).rejects.toThrow(
      /invalid tenant ID "ACME-1"/,
    )
    const rows = await database.pool.query(`select count(*)::int as n from events where stream_name like 'tenant_ACME%'`)
    expect(rows.rows[0].n).toBe(0)
  })
})
