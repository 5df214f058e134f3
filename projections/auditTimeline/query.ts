import type pg from 'pg'
import { EVENT_TYPES, isAnnalistEventType, type AnnalistEventType } from '../../historian/events'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import { filterValue, InvalidQueryError, pageLimit, parseInstant, timeWindow } from '../queryFilters'

/** One line of a tenant's audit trail. */
export interface AuditEntry {
  /** Global log position: internal, for analysts and operators only (docs/ordering.md). */
  readonly position: bigint
  /** The event's place in its tenant's log (1, 2, 3, ...; RecordedEvent.tenantSequence): the order tenants see. */
  readonly sequence: bigint
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
  /** Model calls (successful or failed): the usage the event records; `AgentTaskCompleted`: the task's total cost. */
  readonly inputTokens: number | null
  readonly outputTokens: number | null
  readonly costUsd: number | null
  /** Model calls: true when the provider reported the usage, false when the tokens and cost are an estimate. */
  readonly usageReported: boolean | null
  /** Model calls: the provider's finish reason (`stop`, `length`, ...), when it gave one. */
  readonly finishReason: string | null
  /** Successful routing and planning calls: how the structured value was obtained (constrained, extracted, repaired). */
  readonly structuredOutputPath: string | null
  readonly latencyMs: number | null
  readonly summary: string
}

/** An audit entry as tenant-facing surfaces show it: placed by its tenant sequence, without its global position. */
export type TenantAuditEntry = Omit<AuditEntry, 'position'>

/** The tenant-facing view of an entry (docs/ordering.md: global positions are internal). */
export function tenantAuditEntry({ position: _position, ...entry }: AuditEntry): TenantAuditEntry {
  return entry
}

/** Filters of one tenant's audit trail. Every filter is optional except the tenant; they combine with AND. */
export interface AuditTrailQuery {
  readonly tenantId: string
  readonly taskId?: string
  /** Inclusive lower bound on `occurredAt` (ISO 8601 with a zone, or a Date). No `from` and no `to`: the whole history. */
  readonly from?: string | Date
  /** Exclusive upper bound on `occurredAt`. */
  readonly to?: string | Date
  /** Only these event types (each must be a type of the event catalog). */
  readonly eventTypes?: readonly string[]
  /** Only events of a model with this provider-reported version. */
  readonly modelVersion?: string
  /** Only events that name a prompt template of this version. */
  readonly promptTemplateVersion?: string
  /**
   * Exclusive: only entries after this global position (for paging: pass the last position of the previous page).
   * Internal and analyst use only: tenant-facing surfaces page by `afterSequence`.
   */
  readonly afterPosition?: bigint
  /** Exclusive: only entries after this tenant sequence (for paging: pass the last sequence of the previous page). */
  readonly afterSequence?: bigint
  /** At most this many entries, 1 to AUDIT_TRAIL_MAX_LIMIT. Default AUDIT_TRAIL_DEFAULT_LIMIT. */
  readonly limit?: number
}

/** An AuditTrailQuery after validation: every value checked and normalized, ready to bind as SQL parameters. */
export interface ValidAuditTrailQuery {
  readonly tenantId: string
  readonly taskId: string | null
  readonly from: Date | null
  readonly to: Date | null
  readonly eventTypes: readonly AnnalistEventType[] | null
  readonly modelVersion: string | null
  readonly promptTemplateVersion: string | null
  readonly afterPosition: bigint
  /** Null unless the query pages by tenant sequence; then entries come in sequence order (the same order, per tenant). */
  readonly afterSequence: bigint | null
  readonly limit: number
}

/** The most audit entries one query returns. */
export const AUDIT_TRAIL_MAX_LIMIT = 10_000
/** How many audit entries a query returns when it names no limit. */
export const AUDIT_TRAIL_DEFAULT_LIMIT = 1_000

/** Checks an event-type filter against the catalog; throws InvalidQueryError naming the known types. */
function eventTypeFilter(types: readonly string[]): AnnalistEventType[] {
  if (!Array.isArray(types) || types.length === 0) throw new InvalidQueryError('event type', 'name at least one event type, or leave the filter out')
  const unknown = types.find((type) => typeof type !== 'string' || !isAnnalistEventType(type))
  if (unknown !== undefined) {
    throw new InvalidQueryError('event type', `${JSON.stringify(String(unknown).slice(0, 64))} is not a known event type; known: ${EVENT_TYPES.join(', ')}`)
  }
  return [...new Set(types as AnnalistEventType[])]
}

/** The largest global position or tenant sequence there can be (PostgreSQL bigint). */
const MAX_BIGINT = 9_223_372_036_854_775_807n

/** A paging cursor (`filter` names it in the error): a bigint from 0 to MAX_BIGINT. */
function cursorFilter(filter: 'after position' | 'after sequence', value: bigint): bigint {
  if (typeof value !== 'bigint' || value < 0n || value > MAX_BIGINT) {
    throw new InvalidQueryError(filter, `must be a whole number from 0 to ${MAX_BIGINT}, got ${JSON.stringify(String(value))}`)
  }
  return value
}

/**
 * Validates an AuditTrailQuery without touching the database: tenant and task IDs (InvalidIdentifierError), then the
 * time range, event types, versions, position and limit (InvalidQueryError naming the filter). With both `from` and
 * `to`, `from` must be before `to` and the window at most MAX_WINDOW_DAYS wide. Commands call it before they open storage.
 */
export function validateAuditTrailQuery(query: AuditTrailQuery): ValidAuditTrailQuery {
  const tenantId = assertTenantId(query.tenantId)
  const taskId = query.taskId === undefined ? null : assertTaskId(query.taskId)
  let from = query.from === undefined ? null : parseInstant('from', query.from)
  let to = query.to === undefined ? null : parseInstant('to', query.to)
  if (from && to) ({ from, to } = timeWindow({ from, to }, to, 0))
  return {
    tenantId,
    taskId,
    from,
    to,
    eventTypes: query.eventTypes === undefined ? null : eventTypeFilter(query.eventTypes),
    modelVersion: query.modelVersion === undefined ? null : filterValue('model version', query.modelVersion),
    promptTemplateVersion: query.promptTemplateVersion === undefined ? null : filterValue('prompt template version', query.promptTemplateVersion),
    afterPosition: query.afterPosition === undefined ? 0n : cursorFilter('after position', query.afterPosition),
    afterSequence: afterSequenceOf(query),
    limit: pageLimit(query.limit, AUDIT_TRAIL_MAX_LIMIT, AUDIT_TRAIL_DEFAULT_LIMIT),
  }
}

/** The query's tenant-sequence cursor, refused next to a position cursor: a page is cut by one order only. */
function afterSequenceOf(query: AuditTrailQuery): bigint | null {
  if (query.afterSequence === undefined) return null
  if (query.afterPosition !== undefined) throw new InvalidQueryError('after sequence', 'page by afterSequence or by afterPosition, not both')
  return cursorFilter('after sequence', query.afterSequence)
}

interface AuditRow {
  position: string
  tenant_sequence: string
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
  usage_reported: boolean | null
  finish_reason: string | null
  structured_output_path: string | null
}

/**
 * One tenant's audit trail in log order, filtered by task, occurrence time [from, to), event types, model version and
 * prompt template version, after a global position or a tenant sequence, at most `limit` entries. Everything is validated first
 * (validateAuditTrailQuery), and the SQL always filters on the tenant; the WHERE clause is assembled from constant
 * fragments and every value travels as a parameter. There is no way to read across tenants here.
 */
export async function auditTrail(pool: pg.Pool, query: AuditTrailQuery): Promise<AuditEntry[]> {
  const valid = validateAuditTrailQuery(query)
  const params: unknown[] = [valid.tenantId, valid.afterPosition.toString()]
  const conditions = ['tenant_id = $1', 'position > $2']
  const add = (fragment: (placeholder: string) => string, value: unknown) => {
    params.push(value)
    conditions.push(fragment(`$${params.length}`))
  }
  if (valid.taskId !== null) add((p) => `task_id = ${p}`, valid.taskId)
  if (valid.from !== null) add((p) => `occurred_at >= ${p}`, valid.from)
  if (valid.to !== null) add((p) => `occurred_at < ${p}`, valid.to)
  if (valid.eventTypes !== null) add((p) => `event_type = any(${p}::text[])`, valid.eventTypes)
  if (valid.modelVersion !== null) add((p) => `model_version = ${p}`, valid.modelVersion)
  if (valid.promptTemplateVersion !== null) add((p) => `prompt_template_version = ${p}`, valid.promptTemplateVersion)
  if (valid.afterSequence !== null) add((p) => `tenant_sequence > ${p}`, valid.afterSequence.toString())
  // Within one tenant both orders agree; paging by sequence orders by it, so the (tenant_id, tenant_sequence) index serves it.
  const order = valid.afterSequence === null ? 'position' : 'tenant_sequence'
  params.push(valid.limit)
  const result = await pool.query<AuditRow>(`select * from audit_timeline where ${conditions.join(' and ')} order by ${order} limit $${params.length}`, params)
  return result.rows.map(toAuditEntry)
}

function toNumber(value: string | null): number | null {
  return value === null ? null : Number(value)
}

function toAuditEntry(row: AuditRow): AuditEntry {
  return {
    position: BigInt(row.position),
    sequence: BigInt(row.tenant_sequence),
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
    usageReported: row.usage_reported,
    finishReason: row.finish_reason,
    structuredOutputPath: row.structured_output_path,
    latencyMs: toNumber(row.latency_ms),
    summary: row.summary,
  }
}
