import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import { createApiKey } from '../../api/keys'
import { buildApiServer } from '../../api/server'
import { CURRENT_SCHEMA_VERSION, type AnnalistEvent, type TaskDeadLettered, type TaskRunStarted } from '../../historian/events'
import type { PendingEvent } from '../../historian/historian'
import { InvalidIdentifierError } from '../../historian/streams'
import { liveTables } from '../../projections/projection'
import { InvalidQueryError } from '../../projections/queryFilters'
import { rebuildAndCompare, rebuildProjection } from '../../projections/rebuild'
import { ProjectionRunner, withClient } from '../../projections/runner'
import { taskDeadLettersProjection } from '../../projections/taskDeadLetters/projection'
import { taskSummaryProjection } from '../../projections/taskSummary/projection'
import { taskSummaries } from '../../projections/taskSummary/query'
import { deadLettersOfAllTenants, taskDeadLetters } from '../../projections/taskDeadLetters/query'
import { DATABASE_BACKENDS, historianPerTest } from '../support/databases'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'

/** An event of `type` in run `runId` of the factory's task, at `occurredAt`. */
function runEvent<T extends 'TaskDeadLettered' | 'TaskRunStarted'>(
  f: TaskEventFactory,
  type: T,
  data: Extract<AnnalistEvent, { type: T }>['data'],
  runId: string,
  occurredAt: string,
): PendingEvent {
  const event = {
    type,
    data,
    metadata: {
      schemaVersion: CURRENT_SCHEMA_VERSION[type],
      tenantId: f.tenantId,
      taskId: f.taskId,
      workflowId: f.workflowId,
      runId,
      activityId: type === 'TaskDeadLettered' ? 'fail' : 'begin-run',
      attempt: 1,
      correlationId: f.workflowId,
      causationId: null,
      occurredAt,
      classification: 'internal',
    },
  } as AnnalistEvent
  return { eventId: randomUUID(), event }
}

function deadLettered(f: TaskEventFactory, failures: readonly PendingEvent[], runId = 'run-1', at = '2026-01-15T09:30:00.000Z'): PendingEvent {
  const data: TaskDeadLettered['data'] = {
    failedStep: 'synthesize',
    errorCode: 'MODEL_PROVIDER_ERROR',
    message: 'upstream 503',
    attempts: failures.length,
    retryState: 'NON_RETRYABLE_FAILURE',
    failures: failures.map((pending) => ({
      eventId: pending.eventId,
      attempt: pending.event.metadata.attempt,
      errorCode: 'MODEL_PROVIDER_ERROR',
      message: 'upstream 503',
      occurredAt: pending.event.metadata.occurredAt,
    })),
    runId,
  }
  return runEvent(f, 'TaskDeadLettered', data, runId, at)
}

function runStarted(f: TaskEventFactory, reason: 'redrive' | 'replay', parentRunId: string, runId: string, requestedBy: string, at: string, note?: string): PendingEvent {
  const data: TaskRunStarted['data'] = {
    reason,
    parentRunId,
    fromStep: 'synthesize',
    requestedBy,
    ...(note === undefined ? {} : { note }),
    checkpoint: { parentRunId, step: 'synthesize', revision: 3, stateSha256: 'a'.repeat(64), signature: 'b'.repeat(64) },
    overrides: { models: {}, promptVersions: {} },
  }
  return runEvent(f, 'TaskRunStarted', data, runId, at)
}

/** A run that exhausts its synthesis retries: received ... 4 failed synthesis attempts, AgentTaskFailed, TaskDeadLettered. */
function exhaustedRun(f: TaskEventFactory): { events: PendingEvent[]; failures: PendingEvent[] } {
  const failures = [f.synthesisFailed(true, 1), f.synthesisFailed(true, 2), f.synthesisFailed(true, 3), f.synthesisFailed(false, 4)]
  const failed = f.failed('synthesize', 'MODEL_PROVIDER_ERROR')
  return { events: [f.received(), f.routingInvoked(), f.planCreated(['search']), f.toolExecuted('call-1', 'search'), ...failures, failed, deadLettered(f, failures)], failures }
}

async function rows(pool: pg.Pool): Promise<unknown[]> {
  return (await pool.query<{ row: unknown }>(`select to_jsonb(t) as row from task_dead_letters t order by tenant_id, task_id, run_id`)).rows.map((r) => r.row)
}

describe.each(DATABASE_BACKENDS)('task dead letters read model on $backend', ({ open }) => {
  const fixture = historianPerTest(open)
  const runner = (batchSize: number) => new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: [taskDeadLettersProjection()], batchSize })

  /** acme/task-a dead-lettered then redriven by alice; acme/task-b failed with no retry left to try (no dead letter); globex/task-c dead-lettered. */
  async function seed() {
    const a = new TaskEventFactory('acme', 'task-a')
    const runA = exhaustedRun(a)
    await appendTaskEvents(fixture.historian, 'acme', 'task-a', runA.events)
    const b = new TaskEventFactory('acme', 'task-b')
    await appendTaskEvents(fixture.historian, 'acme', 'task-b', [b.received(), b.failed('synthesize', 'MODEL_CONTEXT_LENGTH_EXCEEDED')])
    const c = new TaskEventFactory('globex', 'task-c')
    await appendTaskEvents(fixture.historian, 'globex', 'task-c', exhaustedRun(c).events)
    const redrive = runStarted(a, 'redrive', 'run-1', 'run-2', 'alice', '2026-01-16T08:00:00.000Z', 'provider fixed')
    // A second redrive of the same run (never started by the CLI, which refuses) and a replay must not change the row.
    const again = runStarted(a, 'redrive', 'run-1', 'run-3', 'mallory', '2026-01-16T09:00:00.000Z')
    const replay = runStarted(a, 'replay', 'run-2', 'run-4', 'bob', '2026-01-16T10:00:00.000Z')
    const end = (await appendTaskEvents(fixture.historian, 'acme', 'task-a', [redrive, again, replay])).position
    return { runA, end }
  }

  it('holds one row per dead-lettered run with its full error context, and marks the first redrive of it', async () => {
    const { runA, end } = await seed()
    expect(await runner(3).catchUp()).toBe(end)

    const acme = await taskDeadLetters(fixture.database.pool, { tenantId: 'acme' })
    expect(acme).toHaveLength(1)
    const stored = (await fixture.historian.readTask('acme', 'task-a')).events
    const letterEvent = stored.find((event) => event.event.type === 'TaskDeadLettered')!
    const redriveEvent = stored.find((event) => event.event.type === 'TaskRunStarted')!
    expect(acme[0]).toEqual({
      tenantId: 'acme',
      taskId: 'task-a',
      runId: 'run-1',
      position: letterEvent.position,
      eventId: letterEvent.eventId,
      failedStep: 'synthesize',
      errorCode: 'MODEL_PROVIDER_ERROR',
      message: 'upstream 503',
      attempts: 4,
      retryState: 'NON_RETRYABLE_FAILURE',
      failures: runA.failures.map((pending, index) => ({
        eventId: pending.eventId,
        attempt: index + 1,
        errorCode: 'MODEL_PROVIDER_ERROR',
        message: 'upstream 503',
        occurredAt: pending.event.metadata.occurredAt,
      })),
      deadLetteredAt: new Date('2026-01-15T09:30:00.000Z'),
      status: 'redriven',
      redrivenBy: 'alice',
      redrivenAt: new Date(redriveEvent.event.metadata.occurredAt),
      redriveRunId: 'run-2',
      redriveNote: 'provider fixed',
    })

    // Tenant-scoped: globex's dead letter is only in globex's answer, and in the operator's cross-tenant view.
    expect((await taskDeadLetters(fixture.database.pool, { tenantId: 'globex' })).map((letter) => [letter.taskId, letter.status, letter.redrivenBy])).toEqual([['task-c', 'open', null]])
    expect((await deadLettersOfAllTenants(fixture.database.pool)).map((letter) => [letter.tenantId, letter.taskId])).toEqual([
      ['acme', 'task-a'],
      ['globex', 'task-c'],
    ])
    expect((await deadLettersOfAllTenants(fixture.database.pool, { status: 'open' })).map((letter) => letter.taskId)).toEqual(['task-c'])
    expect(await taskDeadLetters(fixture.database.pool, { tenantId: 'acme', status: 'open' })).toEqual([])
    expect((await taskDeadLetters(fixture.database.pool, { tenantId: 'acme', status: 'redriven', taskId: 'task-a' })).map((letter) => letter.taskId)).toEqual(['task-a'])
    expect(await taskDeadLetters(fixture.database.pool, { tenantId: 'acme', taskId: 'task-b' })).toEqual([])
  })

  it("serves a tenant's dead letters over the HTTP API to that tenant's key only", async () => {
    await seed()
    await runner(100).catchUp()
    const acmeKey = await createApiKey(fixture.database.pool, { role: 'tenant', tenantId: 'acme' })
    const app = buildApiServer({ pool: fixture.database.pool, store: fixture.store, keyRing: fixture.keyRing })
    try {
      const get = (url: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${acmeKey.key}` } })
      const own = await get('/v2/tenants/acme/dead-tasks?status=redriven')
      expect(own.statusCode).toBe(200)
      const body = own.json() as { deadLetters: { taskId: string; runId: string; status: string; redrivenBy: string; failures: unknown[] }[] }
      expect(body.deadLetters.map((letter) => [letter.taskId, letter.runId, letter.status, letter.redrivenBy, letter.failures.length])).toEqual([['task-a', 'run-1', 'redriven', 'alice', 4]])
      // /v2 shows no global position; /v1 (analysts and operators only, deprecated) still does.
      expect(body.deadLetters[0]).not.toHaveProperty('position')
      expect(body.deadLetters[0]).toMatchObject({ eventId: expect.any(String), redriveNote: 'provider fixed', deadLetteredAt: expect.any(String) })
      expect((await get('/v1/tenants/acme/dead-tasks?status=redriven')).statusCode).toBe(410)
      const analyst = await createApiKey(fixture.database.pool, { role: 'analyst' })
      const v1 = (await app.inject({ method: 'GET', url: '/v1/tenants/acme/dead-tasks?status=redriven', headers: { authorization: `Bearer ${analyst.key}` } })).json() as {
        deadLetters: { position: string }[]
      }
      expect(typeof v1.deadLetters[0]!.position).toBe('string')
      expect(Object.keys(body.deadLetters[0]!).sort()).toEqual(Object.keys(v1.deadLetters[0]!).filter((key) => key !== 'position').sort())
      // The old name answers the same on /v1, as a deprecated alias.
      expect((await app.inject({ method: 'GET', url: '/v1/tenants/acme/dead-letters?status=redriven', headers: { authorization: `Bearer ${analyst.key}` } })).json()).toEqual(v1)
      expect((await get('/v2/tenants/acme/dead-tasks?status=open')).json()).toEqual({ deadLetters: [] })
      expect((await get('/v2/tenants/globex/dead-tasks')).statusCode).toBe(403)
      expect((await get('/v2/tenants/acme/dead-tasks?status=closed')).statusCode).toBe(400)
    } finally {
      await app.close()
    }
  })

  it('rejects bad filters before reading anything', async () => {
    await expect(taskDeadLetters(fixture.database.pool, { tenantId: 'ac-me' })).rejects.toBeInstanceOf(InvalidIdentifierError)
    await expect(taskDeadLetters(fixture.database.pool, { tenantId: 'acme', status: 'closed' as 'open' })).rejects.toThrow(
      new InvalidQueryError('status', '"closed" is not a dead-letter status; use one of open, redriven, all'),
    )
    await expect(deadLettersOfAllTenants(fixture.database.pool, { limit: 0 })).rejects.toBeInstanceOf(InvalidQueryError)
  })

  it('is idempotent, gives the same rows one event or one batch at a time, and equals a rebuild (also after an atomic swap)', async () => {
    const { end } = await seed()
    await runner(1).catchUp()
    const oneByOne = await rows(fixture.database.pool)
    expect(oneByOne).toHaveLength(2)

    // Apply every event again, one at a time and then as one batch: nothing changes.
    const projection = taskDeadLettersProjection()
    const all = await Promise.all([fixture.historian.readTask('acme', 'task-a'), fixture.historian.readTask('acme', 'task-b'), fixture.historian.readTask('globex', 'task-c')])
    const events = all.flatMap((stream) => stream.events).sort((x, y) => (x.position < y.position ? -1 : 1))
    await withClient(fixture.database.pool, async (client) => {
      for (const stored of events) await projection.apply(client, stored, liveTables(projection))
      await projection.applyBatch!(client, events, liveTables(projection))
    })
    expect(await rows(fixture.database.pool)).toEqual(oneByOne)

    const compared = await rebuildAndCompare(fixture.store, fixture.database.pool, [projection])
    expect(compared).toEqual({ matches: true, differences: [], positions: { task_dead_letters: end } })

    // One batch of everything from scratch gives exactly the rows of one event at a time.
    await fixture.database.pool.query('truncate task_dead_letters')
    await withClient(fixture.database.pool, (client) => projection.applyBatch!(client, events, liveTables(projection)))
    expect(await rows(fixture.database.pool)).toEqual(oneByOne)

    const rebuilt = await rebuildProjection(fixture.store, fixture.database.pool, projection)
    expect(rebuilt).toMatchObject({ projection: 'task_dead_letters', position: end, rows: { task_dead_letters: 2 }, matchedIncremental: true, deadLetters: [] })
    expect(await rows(fixture.database.pool)).toEqual(oneByOne)
  })

  it('ignores a redrive that comes before its dead letter in a batch, as one event at a time would', async () => {
    const f = new TaskEventFactory('acme', 'task-z')
    const failures = [f.synthesisFailed(false, 1)]
    const early = runStarted(f, 'redrive', 'run-1', 'run-0', 'early', '2026-01-15T09:00:00.000Z')
    await appendTaskEvents(fixture.historian, 'acme', 'task-z', [f.received(), early, ...failures, deadLettered(f, failures)])
    const events = (await fixture.historian.readTask('acme', 'task-z')).events
    const projection = taskDeadLettersProjection()
    await withClient(fixture.database.pool, (client) => projection.applyBatch!(client, events, liveTables(projection)))
    const batched = await rows(fixture.database.pool)
    expect(batched).toEqual([expect.objectContaining({ task_id: 'task-z', status: 'open', redriven_by: null })])
    await fixture.database.pool.query('truncate task_dead_letters')
    await withClient(fixture.database.pool, async (client) => {
      for (const stored of events) await projection.apply(client, stored, liveTables(projection))
    })
    expect(await rows(fixture.database.pool)).toEqual(batched)
  })

  it('re-opens the task summary on a redrive: running, failure and finish time cleared until the new run ends, as a rebuild has it', async () => {
    const f = new TaskEventFactory('acme', 'task-r')
    await appendTaskEvents(fixture.historian, 'acme', 'task-r', exhaustedRun(f).events)
    const summaries = [taskSummaryProjection()]
    const catchUp = (batchSize: number) => new ProjectionRunner({ store: fixture.store, pool: fixture.database.pool, projections: summaries, batchSize }).catchUp()
    const summary = async () => (await taskSummaries(fixture.database.pool, { tenantId: 'acme', taskId: 'task-r' }))[0]!

    await catchUp(100)
    const failed = await summary()
    expect(failed).toMatchObject({ status: 'failed', currentStep: 'synthesize', failedStep: 'synthesize', errorCode: 'MODEL_PROVIDER_ERROR' })
    expect(failed.finishedAt).not.toBeNull()

    await appendTaskEvents(fixture.historian, 'acme', 'task-r', [runStarted(f, 'redrive', 'run-1', 'run-2', 'alice', '2026-01-16T08:00:00.000Z')])
    await catchUp(1)
    expect(await summary()).toMatchObject({ status: 'running', currentStep: 'synthesize', failedStep: null, errorCode: null, finishedAt: null })

    const done = f.completed({ totalTokens: 0, totalCostUsd: 0, toolCallsSucceeded: 1, toolCallsFailed: 0 })
    await appendTaskEvents(fixture.historian, 'acme', 'task-r', [done])
    await catchUp(1)
    expect(await summary()).toMatchObject({ status: 'completed', currentStep: 'complete', failedStep: null, finishedAt: new Date(done.event.metadata.occurredAt) })
    expect(await rebuildAndCompare(fixture.store, fixture.database.pool, summaries)).toMatchObject({ matches: true, differences: [] })
  })
})
