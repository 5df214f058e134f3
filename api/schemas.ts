import { z } from 'zod'
import { TenantId } from '../historian/events/ids'
import { TaskStatus } from '../projections/taskSummary/projection'

/** A value as it travels in JSON: bigints (positions) and dates become strings, recursively. */
export type Jsonified<T> = T extends bigint
  ? string
  : T extends Date
    ? string
    : T extends readonly (infer Item)[]
      ? Jsonified<Item>[]
      : T extends object
        ? { -readonly [Key in keyof T]: Jsonified<T[Key]> }
        : T

/** Converts query results for a JSON response: bigints as decimal strings, dates as ISO 8601. */
export function jsonified<T>(value: T): Jsonified<T> {
  const convert = (item: unknown): unknown => {
    if (typeof item === 'bigint') return item.toString()
    if (item instanceof Date) return item.toISOString()
    if (Array.isArray(item)) return item.map(convert)
    if (item !== null && typeof item === 'object') return Object.fromEntries(Object.entries(item).map(([key, field]) => [key, convert(field)]))
    return item
  }
  return convert(value) as Jsonified<T>
}

/** The body of every error response: what kind of error, one line saying what went wrong, and the parameter at fault. */
export const ErrorBody = z
  .object({
    error: z.string().describe('HTTP status text, e.g. Bad Request'),
    message: z.string().describe('one line saying what was wrong'),
    parameter: z.string().optional().describe('the path or query parameter at fault (400 only)'),
  })
  .meta({ id: 'Error' })
export type ErrorBody = z.infer<typeof ErrorBody>

const position = z.string().regex(/^\d+$/).describe('global log position (a 64-bit integer as a decimal string)')
const instant = z.string().describe('ISO 8601 time (UTC)')
const nullableText = z.string().nullable()

/** The query string of a route that takes no parameters: any parameter is a 400, never silently ignored. */
export const NoQuery = z.strictObject({})

/** Path parameters of every tenant route. */
export const TenantParams = z.object({ tenantId: TenantId.describe('the tenant to read; a tenant key may name only its own') })

const sequence = z.string().regex(/^\d+$/).describe("the event's place in its tenant's log: 1, 2, 3, ... (a decimal string)")

/** The fields of an audit entry in every API version: everything but its place in the log. */
const auditEntryFields = {
  tenantId: z.string(),
  taskId: z.string(),
  streamRevision: z.string(),
  eventId: z.string(),
  eventType: z.string(),
  occurredAt: instant,
  recordedAt: instant,
  workflowId: z.string(),
  runId: z.string(),
  activityId: z.string(),
  attempt: z.number(),
  correlationId: z.string(),
  causationId: nullableText,
  classification: z.string(),
  modelProvider: nullableText,
  modelId: nullableText,
  modelVersion: nullableText,
  promptTemplateId: nullableText,
  promptTemplateVersion: nullableText,
  promptRef: nullableText,
  promptSha256: nullableText,
  route: nullableText,
  toolName: nullableText,
  toolCallId: nullableText,
  idempotencyKey: nullableText,
  sideEffectId: nullableText,
  errorCode: nullableText,
  willRetry: z.boolean().nullable(),
  inputTokens: z.number().nullable().describe('model calls, successful or failed: the usage the event records'),
  outputTokens: z.number().nullable(),
  costUsd: z.number().nullable().describe("model calls: the call's cost; AgentTaskCompleted: the task's total"),
  usageReported: z.boolean().nullable().describe('model calls: true when the provider reported the usage, false when tokens and cost are an estimate'),
  finishReason: nullableText.describe("model calls: the provider's finish reason (stop, length, ...)"),
  structuredOutputPath: nullableText.describe('routing and planning outcomes: constrained, extracted or repaired'),
  latencyMs: z.number().nullable(),
  summary: z.string(),
}

/** One line of a tenant's audit trail (/v1: with its global position). */
export const AuditEntryBody = z.looseObject({ position, ...auditEntryFields }).meta({ id: 'AuditEntry' })

/** A page of the audit trail and the cursor of the next page (/v1: a global position). */
export const AuditPageBody = z.object({
  entries: z.array(AuditEntryBody),
  nextAfter: position.nullable().describe('pass as `after` to read the next page; null on the last page'),
})

/*
 * The /v2 tenant bodies carry no global position, anywhere (docs/api.md, "Ordering and cursors"). They are plain
 * objects, not loose ones: a response is encoded through its schema, which drops every field not declared here, so a
 * field added to a read model reaches tenants only once it is declared.
 */

/** One line of a tenant's audit trail (/v2: with its tenant sequence). */
export const AuditEntryV2Body = z.object({ sequence, ...auditEntryFields }).meta({ id: 'AuditEntryV2' })

/** A page of the audit trail and the cursor of the next page (/v2: a tenant sequence). */
export const AuditPageV2Body = z.object({
  entries: z.array(AuditEntryV2Body),
  nextAfter: sequence.nullable().describe('the last entry\'s sequence: pass as `after` to read the next page; null on the last page'),
})

const ModelUseBody = z.looseObject({
  role: z.string(),
  provider: z.string(),
  modelId: z.string(),
  modelVersion: z.string(),
  templateId: z.string(),
  templateVersion: z.string(),
})

/** What a task's or a tenant's model calls cost: reported usage over every call, and the estimates kept apart. */
const ModelCostFields = {
  totalTokens: z.number().describe('tokens the provider reported, over every model call, successful or failed'),
  totalCostUsd: z.number().describe('cost of the reported usage, over every model call, successful or failed'),
  failedCallCostUsd: z.number().describe('the part of totalCostUsd spent on failed calls'),
  callsWithoutReportedUsage: z.number().describe('model calls whose usage the provider did not report (timeouts, aborts)'),
  estimatedUnreportedTokens: z.number().describe('their estimated tokens (the prompt): NOT part of totalTokens'),
  estimatedUnreportedCostUsd: z.number().describe('their estimated cost: NOT part of totalCostUsd'),
}

/** What a task's calls came to, or a tenant's tasks' (TaskTotals), but the cost fields. */
const taskCountFields = {
  toolCallsSucceeded: z.number(),
  toolCallsFailed: z.number(),
  modelAttemptsFailed: z.number(),
  attempts: z.number().describe("activity attempts: each activity's highest attempt, summed"),
  eventsApplied: z.number().describe('how many events the figures are folded from'),
}

/** The fields of a task summary in every API version. */
const taskSummaryFields = {
  tenantId: z.string(),
  taskId: z.string(),
  status: z.enum(TaskStatus),
  currentStep: z.string(),
  failedStep: nullableText,
  errorCode: nullableText,
  attempts: z.number().optional(),
  modelsUsed: z.array(ModelUseBody),
  ...ModelCostFields,
  startedAt: instant.nullable(),
  finishedAt: instant.nullable(),
}

/** Where one task stands (/v1: every field of the read model, its global first and last positions included). */
export const TaskSummaryBody = z.looseObject(taskSummaryFields).meta({ id: 'TaskSummary' })

/** Where one task stands (/v2: the declared fields only, no global position). */
export const TaskSummaryV2Body = z.object({ ...taskSummaryFields, ...taskCountFields, route: nullableText }).meta({ id: 'TaskSummaryV2' })

/** The fields of a tenant's summary in every API version. */
const tenantSummaryFields = {
  tenantId: z.string(),
  tasks: z.number(),
  byStatus: z.record(z.string(), z.number()),
  toolCallsSucceeded: z.number(),
  toolCallsFailed: z.number(),
  modelAttemptsFailed: z.number(),
  ...ModelCostFields,
  eventsApplied: z.number(),
}

/** One tenant's tasks in aggregate. */
export const TenantSummaryBody = z.looseObject(tenantSummaryFields).meta({ id: 'TenantSummary' })

/** One tenant's tasks in aggregate (/v2: the declared fields only). */
export const TenantSummaryV2Body = z.object({ ...tenantSummaryFields, ...taskCountFields }).meta({ id: 'TenantSummaryV2' })

/** Rows of an analytics query. Each row's fields are those of the query (see docs/api.md). */
export const AnalyticsRowsBody = z.object({ rows: z.array(z.record(z.string(), z.unknown())) })

/** The lag of each projection behind the event log. */
export const ProjectionLagBody = z.object({
  projections: z.array(
    z.looseObject({
      projection: z.string(),
      checkpoint: position,
      headPosition: position,
      eventsBehind: z.number(),
      oldestUnprojectedAgeMs: z.number(),
      lastBatchLagMs: z.number().nullable(),
      deadLetters: z.number(),
    }),
  ),
})

/** Standard error responses of an authenticated route, for the OpenAPI document. */
export const AUTHENTICATED_ERRORS = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 429: ErrorBody, 500: ErrorBody } as const
