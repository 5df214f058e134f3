import type { FastifyInstance } from 'fastify'
import { describe, expect, it } from 'vitest'
import { createApiKey } from '../../api/keys'
import { buildApiServer } from '../../api/server'
import { appendTaskEvents, TaskEventFactory } from '../../dev/fixtures/eventFactory'
import type { Database } from '../../historian/adapters/postgres/database'
import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian, type PendingEvent } from '../../historian/historian'
import type { TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { defaultProjections } from '../../projections/defaultProjections'
import { ProjectionRunner } from '../../projections/runner'
import { DATABASE_BACKENDS, randomKeyRing } from '../support/databases'

const TENANT = 'acme'
const OTHER = 'globex'

/** Tenant A's tasks, event by event, with fixed IDs and times: one completes, one is dead-lettered in synthesis. */
function tenantEvents(): { taskId: string; pending: PendingEvent }[] {
  const ok = new TaskEventFactory(TENANT, 'task-ok')
  const dead = new TaskEventFactory(TENANT, 'task-dead', new Date('2026-01-15T10:00:00.000Z'))
  const failures = [dead.synthesisFailed(true, 1), dead.synthesisFailed(true, 2), dead.synthesisFailed(false, 3)]
  const okEvents = [
    ok.received(),
    ok.routingInvoked('research'),
    ok.planCreated(['search']),
    ok.toolExecuted('call-1', 'search', 'side-effect-1'),
    ok.synthesisInvoked(),
    ok.completed({ totalTokens: 1010, totalCostUsd: 0.012, toolCallsSucceeded: 1, toolCallsFailed: 0 }),
  ]
  const deadEvents = [dead.received(), dead.routingInvoked(), dead.planCreated(['search']), ...failures, dead.failed('synthesize', 'MODEL_PROVIDER_ERROR'), dead.synthesisDeadLettered(failures)]
  return [...okEvents.map((pending) => ({ taskId: 'task-ok', pending })), ...deadEvents.map((pending) => ({ taskId: 'task-dead', pending }))]
}

/** Records tenant A's events one append at a time, with `noise` events of tenant B (one append, a new task) after each. */
async function recordWithNoise(historian: Historian, noise: number): Promise<void> {
  for (const [index, { taskId, pending }] of tenantEvents().entries()) {
    await appendTaskEvents(historian, TENANT, taskId, [pending])
    const other = new TaskEventFactory(OTHER, `noise-${index}`)
    const events = [other.received(), ...Array.from({ length: noise - 1 }, (_, attempt) => other.routingFailed(true, attempt + 1))]
    await appendTaskEvents(historian, OTHER, `noise-${index}`, events)
  }
}

/** A copy of `value` without its `recordedAt` fields: the one wall-clock value the bodies carry. */
function withoutRecordedAt(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutRecordedAt)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).filter(([key]) => key !== 'recordedAt').map(([key, field]) => [key, withoutRecordedAt(field)]))
}

/** Everything tenant A's key can read over the /v2 tenant routes, the audit trail a few entries a page. */
async function tenantView(app: FastifyInstance, key: string): Promise<Record<string, unknown>> {
  const get = async (path: string): Promise<unknown> => {
    const response = await app.inject({ method: 'GET', url: `/v2/tenants/${TENANT}/${path}`, headers: { authorization: `Bearer ${key}` } })
    expect(response.statusCode, path).toBe(200)
    return withoutRecordedAt(response.json())
  }
  const pages: unknown[] = []
  for (let after: string | null = ''; after !== null; ) {
    const page = (await get(`audit?limit=4${after === '' ? '' : `&after=${after}`}`)) as { nextAfter: string | null }
    pages.push(page)
    after = page.nextAfter
  }
  return {
    pages,
    tasks: await get('tasks'),
    taskOk: await get('tasks/task-ok'),
    taskDead: await get('tasks/task-dead'),
    summary: await get('summary'),
    deadTasks: await get('dead-tasks?status=all'),
  }
}

/** One database where tenant B adds `noise` events after each of A's: what A's key reads, and A's global positions. */
async function recordAndRead(open: () => Promise<Database>, keyRing: TenantKeyRing, noise: number) {
  const database = await open()
  const store = new PostgresEventStore(database)
  const app = buildApiServer({ pool: database.pool, store, keyRing, now: () => new Date('2026-01-15T12:00:00Z') })
  try {
    await recordWithNoise(new Historian(store, { keyRing }), noise)
    await new ProjectionRunner({ store, pool: database.pool, projections: defaultProjections() }).catchUp()
    const { key } = await createApiKey(database.pool, { role: 'tenant', tenantId: TENANT })
    const retired = await app.inject({ method: 'GET', url: `/v1/tenants/${TENANT}/audit`, headers: { authorization: `Bearer ${key}` } })
    const positions = (await store.readTenantLog(TENANT)).map((event) => event.position)
    return { view: await tenantView(app, key), retiredStatus: retired.statusCode, positions }
  } finally {
    await app.close()
    await store.close()
    await database.close()
  }
}

describe.each(DATABASE_BACKENDS)("tenant-scoped ordering on $backend: what a tenant reads does not depend on other tenants' volume", ({ open }) => {
  it('reads the same bodies whether tenant B appended 1 or 20 events between each of its own', async () => {
    const keyRing = randomKeyRing()
    const quiet = await recordAndRead(open, keyRing, 1)
    const busy = await recordAndRead(open, keyRing, 20)

    // The global positions do tell the two apart: a body that carried one would fail the comparison below.
    expect(quiet.positions).toHaveLength(tenantEvents().length)
    expect(busy.positions).not.toEqual(quiet.positions)

    expect(busy.view).toEqual(quiet.view)
    const pages = quiet.view.pages as { entries: { sequence: string }[] }[]
    expect(pages.flatMap((page) => page.entries.map((entry) => entry.sequence))).toEqual(tenantEvents().map((_, index) => String(index + 1)))
    expect((quiet.view.deadTasks as { deadLetters: unknown[] }).deadLetters).toHaveLength(1)
    expect((quiet.view.tasks as { tasks: unknown[] }).tasks).toHaveLength(2)

    expect([quiet.retiredStatus, busy.retiredStatus]).toEqual([410, 410])
  })
})
