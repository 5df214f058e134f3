import { InvalidQueryError, pageLimit } from '../../projections/queryFilters'
import {
  AUDIT_TRAIL_DEFAULT_LIMIT,
  AUDIT_TRAIL_MAX_LIMIT,
  auditTrail,
  tenantAuditEntry,
  validateAuditTrailQuery,
  type AuditTrailQuery,
  type TenantAuditEntry,
} from '../../projections/auditTimeline/query'
import { loadConfig } from '../runtime/config'
import { formatRows, type OutputColumn, type OutputFormat } from '../runtime/output'
import { openStorage } from '../runtime/storage'

/** The options of `annalist audit`, as commander parses them. */
export interface AuditOptions {
  readonly from?: string
  readonly to?: string
  readonly eventType: readonly string[]
  readonly modelVersion?: string
  readonly promptVersion?: string
  readonly after?: string
  readonly limit?: string
  readonly format: OutputFormat
}

/** The CLI option behind each filter name InvalidQueryError uses, so an error names what the user typed. */
const OPTION_OF_FILTER: Readonly<Record<string, string>> = {
  from: '--from',
  to: '--to',
  'time range': '--from/--to',
  'event type': '--event-type',
  'model version': '--model-version',
  'prompt template version': '--prompt-version',
  'after sequence': '--after',
  limit: '--limit',
  status: '--status',
}

/** Rethrows an InvalidQueryError under the name of the CLI option that carried the bad value. */
export function asOptionError(error: unknown): never {
  if (error instanceof InvalidQueryError) throw new InvalidQueryError(OPTION_OF_FILTER[error.filter] ?? error.filter, error.reason)
  throw error
}

function afterSequence(value: string | undefined): bigint {
  if (value === undefined) return 0n
  if (!/^\d{1,19}$/.test(value)) throw new InvalidQueryError('--after', `must be a tenant sequence (a whole number >= 0), got ${JSON.stringify(value.slice(0, 64))}`)
  return BigInt(value)
}

// The tenant sequence, never the global position: what one tenant's trail shows says nothing of other tenants (docs/ordering.md).
const TABLE_COLUMNS: readonly OutputColumn<TenantAuditEntry>[] = [
  { key: 'sequence', header: 'seq' },
  { key: 'occurredAt', header: 'occurred at (UTC)' },
  { key: 'taskId', header: 'task' },
  { key: 'eventType', header: 'event' },
  { key: 'summary', header: 'summary' },
]

const CSV_COLUMNS: readonly OutputColumn<TenantAuditEntry>[] = [
  { key: 'sequence', header: 'sequence' },
  { key: 'occurredAt', header: 'occurred_at' },
  { key: 'recordedAt', header: 'recorded_at' },
  { key: 'tenantId', header: 'tenant_id' },
  { key: 'taskId', header: 'task_id' },
  { key: 'streamRevision', header: 'stream_revision' },
  { key: 'eventId', header: 'event_id' },
  { key: 'eventType', header: 'event_type' },
  { key: 'workflowId', header: 'workflow_id' },
  { key: 'runId', header: 'run_id' },
  { key: 'activityId', header: 'activity_id' },
  { key: 'attempt', header: 'attempt' },
  { key: 'classification', header: 'classification' },
  { key: 'modelProvider', header: 'model_provider' },
  { key: 'modelId', header: 'model_id' },
  { key: 'modelVersion', header: 'model_version' },
  { key: 'promptTemplateId', header: 'prompt_template_id' },
  { key: 'promptTemplateVersion', header: 'prompt_template_version' },
  { key: 'promptSha256', header: 'prompt_sha256' },
  { key: 'route', header: 'route' },
  { key: 'toolName', header: 'tool_name' },
  { key: 'toolCallId', header: 'tool_call_id' },
  { key: 'idempotencyKey', header: 'idempotency_key' },
  { key: 'sideEffectId', header: 'side_effect_id' },
  { key: 'errorCode', header: 'error_code' },
  { key: 'willRetry', header: 'will_retry' },
  { key: 'inputTokens', header: 'input_tokens' },
  { key: 'outputTokens', header: 'output_tokens' },
  { key: 'costUsd', header: 'cost_usd' },
  { key: 'usageReported', header: 'usage_reported' },
  { key: 'finishReason', header: 'finish_reason' },
  { key: 'structuredOutputPath', header: 'structured_output_path' },
  { key: 'latencyMs', header: 'latency_ms' },
  { key: 'summary', header: 'summary' },
]

/**
 * `annalist audit <tenant> [task]`: one tenant's audit trail from the read model, filtered and paged, as a table,
 * JSON or CSV; never another tenant's. Every option is validated before storage is opened.
 */
export async function auditCommand(tenant: string, task: string | undefined, options: AuditOptions): Promise<void> {
  let query: AuditTrailQuery
  try {
    query = {
      tenantId: tenant,
      taskId: task,
      from: options.from,
      to: options.to,
      eventTypes: options.eventType.length > 0 ? options.eventType : undefined,
      modelVersion: options.modelVersion,
      promptTemplateVersion: options.promptVersion,
      afterSequence: afterSequence(options.after),
      limit: pageLimit(options.limit, AUDIT_TRAIL_MAX_LIMIT, AUDIT_TRAIL_DEFAULT_LIMIT),
    }
    validateAuditTrailQuery(query)
  } catch (error) {
    asOptionError(error)
  }
  const storage = await openStorage(loadConfig())
  try {
    const entries = (await auditTrail(storage.database.pool, query)).map(tenantAuditEntry)
    const empty = `no audit entries for tenant ${tenant}${task ? ` task ${task}` : ''} with these filters (is the projector running?)`
    console.log(formatRows(entries, options.format === 'csv' ? CSV_COLUMNS : TABLE_COLUMNS, options.format, empty))
  } finally {
    await storage.close()
  }
}
