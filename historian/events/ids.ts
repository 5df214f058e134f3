import { z } from 'zod'

/** A tenant identifier: lower-case letters, digits and `_`, never `-` (the stream category separator). */
export const TenantId = z
  .string()
  .regex(/^[a-z0-9_]{1,64}$/, 'tenant ID must match ^[a-z0-9_]{1,64}$ (lower-case letters, digits, underscore; no "-")')
export type TenantId = z.infer<typeof TenantId>

/** A task identifier, unique within its tenant. */
export const TaskId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'task ID must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$')
export type TaskId = z.infer<typeof TaskId>

/** Identifies one tool call inside a plan; stable across retries and replays. */
export const ToolCallId = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'tool call ID must match ^[A-Za-z0-9_.-]{1,64}$')
export type ToolCallId = z.infer<typeof ToolCallId>
