import type pg from 'pg'
import { assertTaskId, assertTenantId } from '../../historian/streams'

/** One line of a tenant's audit trail. */
export interface AuditEntry {
  readonly position: bigint
  readonly tenantId: string
  readonly taskId: string
  readonly streamRevision: bigint
  readonly eventId: string
  readonly eventType: string
  readonly occurredAt: Date
  readonly recordedAt: Date
  readonly workflowId: string
  readonly runId: string
  readonly activityId: string
  readonly attempt: number
  readonly correlationId: string
  readonly causationId: string | null
  readonly classification: string
  readonly modelProvider: string | null
  readonly modelId: string | null
  readonly modelVersion: string | null
  readonly promptTemplateId: string | null
  readonly promptTemplateVersion: string | null
  readonly promptRef: string | null
  readonly promptSha256: string | null
  readonly route: string | null
  readonly toolName: string | null
  readonly toolCallId: string | null
  readonly idempotencyKey: string | null
  readonly sideEffectId: string | null
  readonly errorCode: string | null
  readonly willRetry: boolean | null
  readonly inputTokens: number | null
  readonly outputTokens: number | null
  readonly costUsd: number | null
  readonly latencyMs: number | null
  readonly summary: string
}

export interface AuditTrailQuery {
  readonly tenantId: string
  readonly taskId?: string
  /** Exclusive: only entries after this global position (for paging). */
  readonly afterPosition?: bigint
  /** At most this many entries, 1 to 10,000. Default 1,000. */
  readonly limit?: number
}

interface AuditRow {
  position: string
  tenant_id: string
  task_id: string
  stream_revision: string
  event_id: string
  event_type: string
  occurred_at: Date
  recorded_at: Date
  workflow_id: string
  run_id: string
  activity_id: string
  attempt: number
  correlation_id: string
  causation_id: string | null
  classification: string
  model_provider: string | null
  model_id: string | null
  model_version: string | null
  prompt_template_id: string | null
  prompt_template_version: string | null
  prompt_ref: string | null
  prompt_sha256: string | null
  route: string | null
  tool_name: string | null
  tool_call_id: string | null
  idempotency_key: string | null
  side_effect_id: string | null
  error_code: string | null
  will_retry: boolean | null
  input_tokens: number | null
  output_tokens: number | null
  cost_usd: string | null
  latency_ms: string | null
  summary: string
}

const MAX_LIMIT = 10_000

/**
 * One tenant's audit trail in log order, optionally for one task and from a position on. The tenant ID is validated
 * first (InvalidIdentifierError) and every query filters on it: there is no way to read across tenants here.
 */
export async function auditTrail(pool: pg.Pool, query: AuditTrailQuery): Promise<AuditEntry[]> {
  const tenantId = assertTenantId(query.tenantId)
  const taskId = query.taskId === undefined ? null : assertTaskId(query.taskId)
  const limit = query.limit ?? 1_000
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new RangeError(`limit must be an integer from 1 to ${MAX_LIMIT}, got ${limit}`)
  const result = await pool.query<AuditRow>(
    `select * from audit_timeline
      where tenant_id = $1
        and ($2::text is null or task_id = $2::text)
        and position > $3
      order by position
      limit $4`,
    [tenantId, taskId, (query.afterPosition ?? 0n).toString(), limit],
  )
  return result.rows.map(toAuditEntry)
}

function toNumber(value: string | null): number | null {
  return value === null ? null : Number(value)
}

function toAuditEntry(row: AuditRow): AuditEntry {
  return {
    position: BigInt(row.position),
    tenantId: row.tenant_id,
    taskId: row.task_id,
    streamRevision: BigInt(row.stream_revision),
    eventId: row.event_id,
    eventType: row.event_type,
    occurredAt: row.occurred_at,
    recordedAt: row.recorded_at,
    workflowId: row.workflow_id,
    runId: row.run_id,
    activityId: row.activity_id,
    attempt: row.attempt,
    correlationId: row.correlation_id,
    causationId: row.causation_id,
    classification: row.classification,
    modelProvider: row.model_provider,
    modelId: row.model_id,
    modelVersion: row.model_version,
    promptTemplateId: row.prompt_template_id,
    promptTemplateVersion: row.prompt_template_version,
    promptRef: row.prompt_ref,
    promptSha256: row.prompt_sha256,
    route: row.route,
    toolName: row.tool_name,
    toolCallId: row.tool_call_id,
    idempotencyKey: row.idempotency_key,
    sideEffectId: row.side_effect_id,
    errorCode: row.error_code,
    willRetry: row.will_retry,
    inputTokens: row.input_tokens,
    outputTokens: row.output_tokens,
    costUsd: toNumber(row.cost_usd),
    latencyMs: toNumber(row.latency_ms),
    summary: row.summary,
  }
}
