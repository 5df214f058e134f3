import { TaskId, TenantId } from './events/ids'

/** Thrown when a tenant or task ID is not valid; nothing is read or written. */
export class InvalidIdentifierError extends Error {
  constructor(
    readonly kind: 'tenant' | 'task',
    readonly value: string,
    reason: string,
  ) {
    super(`invalid ${kind} ID ${JSON.stringify(value)}: ${reason}`)
    this.name = 'InvalidIdentifierError'
  }
}

export function assertTenantId(value: string): TenantId {
  const parsed = TenantId.safeParse(value)
  if (!parsed.success) throw new InvalidIdentifierError('tenant', value, parsed.error.issues[0]?.message ?? 'invalid')
  return parsed.data
}

export function assertTaskId(value: string): TaskId {
  const parsed = TaskId.safeParse(value)
  if (!parsed.success) throw new InvalidIdentifierError('task', value, parsed.error.issues[0]?.message ?? 'invalid')
  return parsed.data
}

const CATEGORY_PREFIX = 'tenant_'

/** The category of one tenant's streams: `tenant_<tenantId>`. EventStoreDB's `$ce-` projection splits at the first `-`. */
export function tenantCategory(tenantId: string): string {
  return `${CATEGORY_PREFIX}${assertTenantId(tenantId)}`
}

/** The stream of one task: `tenant_<tenantId>-<taskId>`. The only place task stream names are built. */
export function taskStreamName(tenantId: string, taskId: string): string {
  return `${tenantCategory(tenantId)}-${assertTaskId(taskId)}`
}

/**
 * The tenant whose log `stream` belongs to, or undefined when its category is not `tenant_<t>`: the rule of the
 * generated column events.tenant_id (migrations/001_event_store.sql) and of annalist_stream_tenant (017), which number
 * a tenant's events (RecordedEvent.tenantSequence).
 */
export function tenantOfStream(stream: string): string | undefined {
  const category = stream.split('-', 1)[0]!
  return category.startsWith(CATEGORY_PREFIX) && category.length > CATEGORY_PREFIX.length ? category.slice(CATEGORY_PREFIX.length) : undefined
}

/** Splits a task stream name back into its tenant and task. */
export function parseTaskStreamName(stream: string): { tenantId: TenantId; taskId: TaskId; category: string } {
  const separator = stream.indexOf('-')
  const category = separator < 0 ? stream : stream.slice(0, separator)
  if (!category.startsWith(CATEGORY_PREFIX) || separator < 0) {
    throw new InvalidIdentifierError('task', stream, `not a task stream name (expected ${CATEGORY_PREFIX}<tenant>-<task>)`)
  }
  return {
    tenantId: assertTenantId(category.slice(CATEGORY_PREFIX.length)),
    taskId: assertTaskId(stream.slice(separator + 1)),
    category,
  }
}

const COMPLIANCE_PREFIX = 'compliance_'
const LIFECYCLE_STREAM = 'lifecycle'

/**
 * The stream of one tenant's lifecycle decisions: `compliance_<tenantId>-lifecycle`. Its category is not `tenant_…`,
 * so it never reads as a task stream (parseTaskStreamName refuses it) and never shows in readTenantLog; EventStoreDB's
 * `$ce-compliance_<tenantId>` is the tenant's compliance log. The only place compliance stream names are built.
 */
export function complianceStreamName(tenantId: string): string {
  return `${COMPLIANCE_PREFIX}${assertTenantId(tenantId)}-${LIFECYCLE_STREAM}`
}

/** The tenant of a compliance stream name, or undefined when `stream` is not one. */
export function complianceStreamTenant(stream: string): TenantId | undefined {
  const match = /^compliance_([a-z0-9_]{1,64})-lifecycle$/.exec(stream)
  return match ? assertTenantId(match[1]!) : undefined
}
