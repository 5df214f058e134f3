import type pg from 'pg'
import { z } from 'zod'
import { type CompensationContext, defineTool, type ToolDefinition, ToolName } from './tool'

/** Thrown when an idempotency key already has an outbox row of another tenant or task: the key was reused, a broken invariant. */
export class OutboxKeyConflictError extends Error {
  constructor(
    readonly idempotencyKey: string,
    readonly expected: { tenantId: string; taskId: string },
    readonly found: { tenantId: string; taskId: string },
  ) {
    super(
      `idempotency key ${idempotencyKey} already belongs to tenant ${found.tenantId} task ${found.taskId}, ` +
        `not tenant ${expected.tenantId} task ${expected.taskId}`,
    )
    this.name = 'OutboxKeyConflictError'
  }
}

/** Thrown when a retraction names an outbox row that does not exist, belongs to another tenant or task, or is no notification. */
export class RetractionTargetError extends Error {
  constructor(
    readonly sideEffectId: string,
    readonly problem: string,
  ) {
    super(`cannot retract ${sideEffectId}: ${problem}`)
    this.name = 'RetractionTargetError'
  }
}

/** Channels a notification can go out on. */
export const NotificationChannel = z.enum(['email', 'slack', 'sms', 'webhook'])

/** Parameters of the send_notification tool. */
export const SendNotificationParameters = z.strictObject({
  channel: NotificationChannel.default('email'),
  message: z.string().min(1).max(2000),
})
/** Result of the send_notification tool: the outbox row that stands for the delivery. */
export const SendNotificationResult = z.object({
  delivered: z.literal(true),
  sideEffectId: z.string().regex(/^outbox:\d+$/),
  deduplicated: z.boolean(),
})
export type SendNotificationResult = z.infer<typeof SendNotificationResult>

/**
 * Sends a notification by writing it to the `tool_outbox` table, keyed by the call's idempotency key. Any number of
 * attempts with the same key, concurrent or not, leave exactly one row; later attempts report `deduplicated: true`.
 * Its compensation retracts the notification (retractNotification).
 */
export function createSendNotificationTool(deps: { pool: pg.Pool }): ToolDefinition<z.infer<typeof SendNotificationParameters>, SendNotificationResult> {
  return defineTool({
    name: ToolName.sendNotification,
    description:
      'Sends a notification to the task owner (side effect, delivered once per tool call). Parameters: {"channel": "email"|"slack"|"sms"|"webhook", "message": string}.',
    parameters: SendNotificationParameters,
    result: SendNotificationResult,
    sideEffect: true,
    compensate: (ctx) => retractNotification(deps.pool, ctx),
    execute: async ({ channel, message }, ctx) => {
      const inserted = await deps.pool.query<{ id: string }>(
        `insert into tool_outbox (idempotency_key, tenant_id, task_id, tool_call_id, channel, message)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (idempotency_key) do nothing
         returning id::text as id`,
        [ctx.idempotencyKey, ctx.tenantId, ctx.taskId, ctx.toolCallId, channel, message],
      )
      const fresh = inserted.rows[0]
      if (fresh) return { delivered: true, sideEffectId: `outbox:${fresh.id}`, deduplicated: false }
      const existing = await deps.pool.query<{ id: string; tenant_id: string; task_id: string }>(
        'select id::text as id, tenant_id, task_id from tool_outbox where idempotency_key = $1',
        [ctx.idempotencyKey],
      )
      const row = existing.rows[0]
      if (!row) throw new Error(`outbox row for idempotency key ${ctx.idempotencyKey} vanished after a conflicting insert`)
      if (row.tenant_id !== ctx.tenantId || row.task_id !== ctx.taskId) {
        throw new OutboxKeyConflictError(ctx.idempotencyKey, { tenantId: ctx.tenantId, taskId: ctx.taskId }, { tenantId: row.tenant_id, taskId: row.task_id })
      }
      return { delivered: true, sideEffectId: `outbox:${row.id}`, deduplicated: true }
    },
  })
}

/**
 * Retracts a sent notification through the same outbox: a row of kind 'retraction' on the same channel, pointing at the
 * notification's row, keyed by the compensation's idempotency key. Any number of attempts leave one retraction, and a
 * notification is never retracted twice (a unique index on `retracts_id`); `compensationId` names the retraction row.
 */
export async function retractNotification(pool: pg.Pool, ctx: CompensationContext): Promise<{ compensationId: string }> {
  const match = /^outbox:(\d+)$/.exec(ctx.sideEffectId)
  if (!match) throw new RetractionTargetError(ctx.sideEffectId, 'it does not name an outbox row (outbox:<id>)')
  const targetId = match[1]!
  const target = await pool.query<{ tenant_id: string; task_id: string; kind: string; channel: string; message: string }>(
    'select tenant_id, task_id, kind, channel, message from tool_outbox where id = $1',
    [targetId],
  )
  const notification = target.rows[0]
  if (!notification) throw new RetractionTargetError(ctx.sideEffectId, 'no such outbox row')
  if (notification.tenant_id !== ctx.tenantId || notification.task_id !== ctx.taskId) {
    throw new RetractionTargetError(ctx.sideEffectId, `it belongs to tenant ${notification.tenant_id} task ${notification.task_id}, not tenant ${ctx.tenantId} task ${ctx.taskId}`)
  }
  if (notification.kind !== 'notification') throw new RetractionTargetError(ctx.sideEffectId, `it is a ${notification.kind}, not a notification`)
  const message = `Retraction of ${ctx.sideEffectId}: please disregard "${notification.message.slice(0, 1_800)}"; the task it reported on failed.`
  const inserted = await pool.query<{ id: string }>(
    `insert into tool_outbox (idempotency_key, tenant_id, task_id, tool_call_id, channel, message, kind, retracts_id)
     values ($1, $2, $3, $4, $5, $6, 'retraction', $7)
     on conflict do nothing
     returning id::text as id`,
    [ctx.idempotencyKey, ctx.tenantId, ctx.taskId, ctx.toolCallId, notification.channel, message, targetId],
  )
  const fresh = inserted.rows[0]
  if (fresh) return { compensationId: `outbox:${fresh.id}` }
  // Another attempt got there first: the same key, or (never with derived keys) another retraction of the same row.
  const existing = await pool.query<{ id: string; tenant_id: string; task_id: string; retracts_id: string | null }>(
    `select id::text as id, tenant_id, task_id, retracts_id::text as retracts_id from tool_outbox
      where idempotency_key = $1 or (kind = 'retraction' and retracts_id = $2)
      order by (idempotency_key = $1) desc limit 1`,
    [ctx.idempotencyKey, targetId],
  )
  const row = existing.rows[0]
  if (!row) throw new Error(`retraction of ${ctx.sideEffectId} vanished after a conflicting insert`)
  if (row.tenant_id !== ctx.tenantId || row.task_id !== ctx.taskId || row.retracts_id !== targetId) {
    throw new OutboxKeyConflictError(ctx.idempotencyKey, { tenantId: ctx.tenantId, taskId: ctx.taskId }, { tenantId: row.tenant_id, taskId: row.task_id })
  }
  return { compensationId: `outbox:${row.id}` }
}
