import type pg from 'pg'
import { z } from 'zod'
import { defineTool, type ToolDefinition, ToolName } from './tool'

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
 */
export function createSendNotificationTool(deps: { pool: pg.Pool }): ToolDefinition<z.infer<typeof SendNotificationParameters>, SendNotificationResult> {
  return defineTool({
    name: ToolName.sendNotification,
    description:
      'Sends a notification to the task owner (side effect, delivered once per tool call). Parameters: {"channel": "email"|"slack"|"sms"|"webhook", "message": string}.',
    parameters: SendNotificationParameters,
    result: SendNotificationResult,
    sideEffect: true,
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
