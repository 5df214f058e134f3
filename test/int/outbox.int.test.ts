import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseFaultPlan } from '../../dev/faults/faultPlan'
import { withToolFaults } from '../../dev/faults/faultyTools'
import { createDefaultTools, type ToolRegistry } from '../../activities/tools/registry'
import { runTool } from '../../activities/tools/runTool'
import type { SendNotificationResult } from '../../activities/tools/sendNotification'
import type { ToolContext, ToolOutcome } from '../../activities/tools/tool'
import type { Database } from '../../historian/adapters/postgres/database'
import { freshPgliteDatabase, freshPostgresDatabase, randomSuffix } from '../support/databases'
import { waitUntil } from '../support/waitUntil'

const notify = { toolName: 'send_notification', parameters: { channel: 'slack', message: 'deploy finished' } }

function toolContext(overrides: Partial<ToolContext> = {}): ToolContext {
  return {
    tenantId: 'acme',
    taskId: 'task-1',
    toolCallId: 't1',
    idempotencyKey: `key-${randomSuffix()}`,
    attempt: 1,
    abortSignal: new AbortController().signal,
    ...overrides,
  }
}

function delivered(outcome: ToolOutcome): SendNotificationResult {
  if (!outcome.ok) throw new Error(`expected a delivery, got ${outcome.errorCode}: ${outcome.message}`)
  return outcome.result as SendNotificationResult
}

async function outboxRows(db: Database, idempotencyKey: string) {
  const { rows } = await db.pool.query<{ id: string; tenant_id: string; task_id: string; tool_call_id: string; channel: string; message: string }>(
    'select id::text as id, tenant_id, task_id, tool_call_id, channel, message from tool_outbox where idempotency_key = $1',
    [idempotencyKey],
  )
  return rows
}

const backends = [
  ['PostgreSQL server', () => freshPostgresDatabase()],
  ['PGlite', () => freshPgliteDatabase()],
] as const

describe.each(backends)('send_notification outbox on %s', (_name, open) => {
  let db: Database
  let tools: ToolRegistry

  beforeAll(async () => {
    db = await open()
    const hung = parseFaultPlan({ rules: [{ target: 'tool:send_notification', kind: 'timeout', tenantId: 'hung' }] })
    tools = withToolFaults(hung, () => undefined)(createDefaultTools({ pool: db.pool }))
  })
  afterAll(async () => {
    await db?.close()
  })

  it('writes one outbox row and returns its id as the sideEffectId', async () => {
    const ctx = toolContext({ toolCallId: 't3' })
    const outcome = await runTool(tools, notify, ctx)
    const result = delivered(outcome)
    expect(result).toMatchObject({ delivered: true, deduplicated: false })
    expect(outcome.sideEffectId).toBe(result.sideEffectId)
    const rows = await outboxRows(db, ctx.idempotencyKey)
    expect(rows).toEqual([{ id: result.sideEffectId.replace('outbox:', ''), tenant_id: 'acme', task_id: 'task-1', tool_call_id: 't3', channel: 'slack', message: 'deploy finished' }])
  })

  it('leaves exactly one row for any number of attempts with the same key, and every attempt reports the same sideEffectId', async () => {
    const key = `key-${randomSuffix()}`
    const first = delivered(await runTool(tools, notify, toolContext({ idempotencyKey: key, attempt: 1 })))
    const retries = []
    for (let attempt = 2; attempt <= 4; attempt += 1) retries.push(delivered(await runTool(tools, notify, toolContext({ idempotencyKey: key, attempt }))))
    const concurrent = (await Promise.all(Array.from({ length: 6 }, () => runTool(tools, notify, toolContext({ idempotencyKey: key, attempt: 5 }))))).map(delivered)
    for (const repeat of [...retries, ...concurrent]) expect(repeat).toEqual({ delivered: true, sideEffectId: first.sideEffectId, deduplicated: true })
    expect(await outboxRows(db, key)).toHaveLength(1)
  })

  it('gives different keys different rows', async () => {
    const a = delivered(await runTool(tools, notify, toolContext()))
    const b = delivered(await runTool(tools, notify, toolContext()))
    expect(a.sideEffectId).not.toBe(b.sideEffectId)
  })

  it('refuses a key that already belongs to another tenant, writing nothing', async () => {
    const key = `key-${randomSuffix()}`
    delivered(await runTool(tools, notify, toolContext({ idempotencyKey: key })))
    const outcome = await runTool(tools, notify, toolContext({ idempotencyKey: key, tenantId: 'globex' }))
    expect(outcome).toMatchObject({ ok: false, errorCode: 'TOOL_EXECUTION_ERROR', sideEffectId: null })
    expect(!outcome.ok && outcome.message).toMatch(/already belongs to tenant acme/)
    expect((await outboxRows(db, key)).map((row) => row.tenant_id)).toEqual(['acme'])
  })

  it('writes nothing for invalid parameters or when a timeout fault hangs the tool until the activity aborts it', async () => {
    const invalid = toolContext()
    expect(await runTool(tools, { toolName: 'send_notification', parameters: { channel: 'pigeon', message: 'x' } }, invalid)).toMatchObject({
      ok: false,
      errorCode: 'TOOL_INVALID_PARAMETERS',
    })
    expect(await outboxRows(db, invalid.idempotencyKey)).toEqual([])

    const controller = new AbortController()
    const hung = toolContext({ tenantId: 'hung', abortSignal: controller.signal })
    const pending = runTool(tools, notify, hung)
    controller.abort()
    expect(await pending).toMatchObject({ ok: false, errorCode: 'TOOL_TIMEOUT' })
    expect(await outboxRows(db, hung.idempotencyKey)).toEqual([])
    // the retry (attempt 2) is not faulted and delivers once
    delivered(await runTool(tools, notify, { ...hung, attempt: 2, abortSignal: new AbortController().signal }))
    expect(await outboxRows(db, hung.idempotencyKey)).toHaveLength(1)
  })
})

describe('send_notification outbox under contention on the PostgreSQL server', () => {
  const N = 8
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>
  let tools: ToolRegistry

  beforeAll(async () => {
    db = await freshPostgresDatabase()
    tools = createDefaultTools({ pool: db.pool })
  })
  afterAll(async () => {
    await db?.close()
  })

  async function lockWaiters(): Promise<number> {
    const { rows } = await db.pool.query<{ n: number }>(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
    )
    return rows[0]?.n ?? 0
  }

  /** Holds an uncommitted insert of `key` on its own connection while N attempts pile up behind it, then ends it. */
  async function raceBehindOpenInsert(key: string, end: 'commit' | 'rollback'): Promise<SendNotificationResult[]> {
    const holder = new pg.Client({ connectionString: db.url })
    await holder.connect()
    try {
      await holder.query('begin')
      await holder.query(
        `insert into tool_outbox (idempotency_key, tenant_id, task_id, tool_call_id, channel, message) values ($1, 'acme', 'task-1', 't1', 'email', 'zombie attempt')`,
        [key],
      )
      const attempts = Promise.all(Array.from({ length: N }, (_, i) => runTool(tools, notify, toolContext({ idempotencyKey: key, attempt: i + 2 }))))
      await waitUntil(`${N} attempts blocked on the open insert`, async () => (await lockWaiters()) >= N)
      await holder.query(end)
      return (await attempts).map(delivered)
    } finally {
      await holder.end()
    }
  }

  it(`${N} concurrent attempts behind an open insert of the same key all dedupe onto the committed row`, async () => {
    const key = `key-${randomSuffix()}`
    const results = await raceBehindOpenInsert(key, 'commit')
    const rows = await outboxRows(db, key)
    expect(rows).toHaveLength(1)
    expect(rows[0]?.message).toBe('zombie attempt')
    for (const result of results) expect(result).toEqual({ delivered: true, sideEffectId: `outbox:${rows[0]?.id}`, deduplicated: true })
  })

  it(`when the open insert rolls back, exactly one of ${N} concurrent attempts delivers and the rest dedupe onto it`, async () => {
    const key = `key-${randomSuffix()}`
    const results = await raceBehindOpenInsert(key, 'rollback')
    const rows = await outboxRows(db, key)
    expect(rows).toHaveLength(1)
    expect(rows[0]?.message).toBe('deploy finished')
    expect(results.filter((result) => !result.deduplicated)).toHaveLength(1)
    expect(new Set(results.map((result) => result.sideEffectId))).toEqual(new Set([`outbox:${rows[0]?.id}`]))
  })

  it(`${N} concurrent first attempts with the same key leave one row`, async () => {
    const key = `key-${randomSuffix()}`
    const results = (await Promise.all(Array.from({ length: N }, () => runTool(tools, notify, toolContext({ idempotencyKey: key }))))).map(delivered)
    expect(await outboxRows(db, key)).toHaveLength(1)
    expect(results.filter((result) => !result.deduplicated)).toHaveLength(1)
    expect(new Set(results.map((result) => result.sideEffectId)).size).toBe(1)
  })
})
