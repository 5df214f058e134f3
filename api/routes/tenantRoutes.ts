import { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { auditTrail, tenantAuditEntry, validateAuditTrailQuery, type AuditEntry, type AuditTrailQuery } from '../../projections/auditTimeline/query'
import { exportTenant, validateExportQuery, type ExportPacer } from '../../projections/export/tenantExport'
import { InvalidQueryError, pageLimit } from '../../projections/queryFilters'
import { TaskStatus } from '../../projections/taskSummary/projection'
import { taskSummaries, tenantSummary, validateTaskSummaryQuery } from '../../projections/taskSummary/query'
import { taskDeadLetters, validateTaskDeadLetterQuery } from '../../projections/taskDeadLetters/query'
import type { ApiDeps } from '../apiDeps'
import { requires } from '../accessControl'
import { Role } from '../roles'
import {
  AUTHENTICATED_ERRORS,
  AuditPageBody,
  AuditPageV2Body,
  ErrorBody,
  jsonified,
  NoQuery,
  TaskSummaryBody,
  TaskSummaryV2Body,
  TenantParams,
  TenantSummaryBody,
  TenantSummaryV2Body,
} from '../schemas'

/** Most entries or tasks one page may hold. */
export const MAX_PAGE = 1_000
const DEFAULT_PAGE = 100
const MAX_CURSOR = 9_223_372_036_854_775_807n

const once = (description: string) => z.string().optional().describe(description)
const instant = (description: string) => once(`${description}: ISO 8601 date or time with a zone, e.g. 2026-02-03T14:22:10Z`)
const limit = once(`page size, 1 to ${MAX_PAGE} (default ${DEFAULT_PAGE})`)

const auditQuery = (cursor: string) => z.strictObject({
  taskId: once('only this task'),
  from: instant('only events that occurred at or after this time'),
  to: instant('only events that occurred before this time'),
  eventType: z
    .union([z.string(), z.array(z.string()).max(50)])
    .optional()
    .describe('only these event types: repeat the parameter or separate them with commas'),
  modelVersion: once('only events of model calls with this model version'),
  promptVersion: once('only events of model calls with this prompt-template version'),
  after: once(`cursor: only entries after this ${cursor} (the nextAfter of the previous page)`),
  limit,
})

const TasksQuery = z.strictObject({
  status: z.enum(TaskStatus).optional().describe('only tasks with this status'),
  limit,
})

const DeadLettersQuery = z.strictObject({
  status: z.enum(['open', 'redriven', 'all']).optional().describe('open (awaiting a redrive), redriven, or all (default)'),
  limit,
})

const taskDeadLetterFields = {
  tenantId: z.string(),
  taskId: z.string(),
  runId: z.string(),
  failedStep: z.string(),
  errorCode: z.string(),
  attempts: z.number(),
  retryState: z.string(),
  status: z.enum(['open', 'redriven']),
  redrivenBy: z.string().nullable(),
}

/** One dead-lettered run of a task (/v1: every field of the read model, the global position of its event included). */
const TaskDeadLetterBody = z
  .looseObject({
    ...taskDeadLetterFields,
    failures: z.array(z.looseObject({ eventId: z.string().nullable(), attempt: z.number(), errorCode: z.string() })),
  })
  .meta({ id: 'TaskDeadLetter' })

/** One dead-lettered run of a task (/v2: the declared fields only, no global position; see api/schemas.ts). */
const TaskDeadLetterV2Body = z
  .object({
    ...taskDeadLetterFields,
    eventId: z.string().describe('the TaskDeadLettered event'),
    message: z.string(),
    failures: z.array(
      z.object({ eventId: z.string().nullable(), attempt: z.number(), errorCode: z.string(), message: z.string(), occurredAt: z.string().nullable() }),
    ),
    deadLetteredAt: z.string(),
    redrivenAt: z.string().nullable(),
    redriveRunId: z.string().nullable(),
    redriveNote: z.string().nullable(),
  })
  .meta({ id: 'TaskDeadLetterV2' })

const ExportQuery = z.strictObject({
  from: instant('only events recorded at or after this time'),
  to: instant('only events recorded before this time'),
  format: z.enum(['jsonl', 'csv']).optional().describe('jsonl (default, verifiable with `annalist verify-export`) or csv'),
})

const tenantRoute = (summary: string, description?: string) => ({
  tags: ['tenant'],
  summary,
  ...(description ? { description } : {}),
  security: [{ bearerAuth: [] }],
})

/** `after` as a cursor (`what` says which kind); a value out of the 64-bit range is a bad filter, not a server error. */
function cursor(value: string | undefined, what: string): bigint | undefined {
  if (value === undefined) return undefined
  if (!/^\d{1,19}$/.test(value) || BigInt(value) > MAX_CURSOR) throw new InvalidQueryError('after', `${JSON.stringify(value.slice(0, 32))} is not ${what} (a whole number)`)
  return BigInt(value)
}

/** A repeatable, comma-separable parameter as a list. */
function listParameter(value: string | string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined
  return (Array.isArray(value) ? value : [value]).flatMap((item) => item.split(',')).map((item) => item.trim())
}

/** A status-filtered page of the tenant in the path: the query of the task and dead-task lists. */
function statusPage<Status>(request: {
  readonly params: { readonly tenantId: string }
  readonly query: { readonly status?: Status; readonly limit?: string }
}): { tenantId: string; status: Status | undefined; limit: number } {
  return { tenantId: request.params.tenantId, status: request.query.status, limit: pageLimit(request.query.limit, MAX_PAGE, DEFAULT_PAGE) }
}

/**
 * Reads rows of a tenant's read model and records for the access log what was asked, as `validate` states it (which
 * throws on a bad filter before anything is read), and how many rows were returned.
 */
async function readRecorded<Query, Row>(
  request: Pick<FastifyRequest, 'accessQuery' | 'rowsReturned'>,
  query: Query,
  validate: (query: Query) => object,
  read: (query: Query) => Promise<Row[]>,
): Promise<Row[]> {
  request.accessQuery = { ...validate(query) }
  const rows = await read(query)
  request.rowsReturned = rows.length
  return rows
}

/** The versions the tenant routes are served under: /v1 pages and places by global position, /v2 by tenant sequence. */
export const TenantApiVersion = { v1: 'v1', v2: 'v2' } as const
export type TenantApiVersion = (typeof TenantApiVersion)[keyof typeof TenantApiVersion]

/** The last day the /v1 tenant routes that have a /v2 successor answer analyst and operator keys (docs/api.md). */
export const V1_TENANT_ROUTES_UNTIL = '2027-06-30'

/**
 * The route hook that retires a /v1 tenant route for tenant keys: 410 naming its /v2 successor. Its cursors are global
 * positions, so translating them would keep the side channel open (docs/api.md, "Ordering and cursors"). It runs after
 * access control, so a key outside its scope still gets the one 403, and the access log records the 410 as a refusal.
 */
function goneForTenantKeys(successor: string) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (request.principal?.role !== Role.tenant) return
    request.deniedReason = `tenant key on retired /v1 route (use ${successor})`
    await reply.code(410).send({ error: 'Gone', message: `this /v1 route is gone for tenant keys: use GET ${successor}, whose cursors are tenant sequences` })
  }
}

/** An audit entry as /v1 has always shown it: with its global position, without the tenant sequence. */
function globalAuditEntry({ sequence: _sequence, ...entry }: AuditEntry): Omit<AuditEntry, 'sequence'> {
  return entry
}

/**
 * The tenant routes: audit trail, task summaries, tenant summary, dead-lettered tasks and export. Every one reads only
 * the tenant in its path. Registered once per version (api/server.ts); the versions differ in the order the
 * audit trail is paged by and in the bodies: /v2 shows no global position. On /v1 the routes with a /v2 successor are
 * deprecated, and refused to tenant keys (goneForTenantKeys).
 */
export const tenantRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps; version: TenantApiVersion; exportPacer: ExportPacer }> = async (
  app,
  { deps, version, exportPacer },
) => {
  const read = requires('tenant.read')
  const v2 = version === TenantApiVersion.v2
  /**
   * The options of a route both versions serve, around its own `schema`: on /v1 it is deprecated and gone for tenant
   * keys (its successor is the same path under /v2). An `expensive` route is also concurrency-limited (api/rateLimits.ts).
   */
  const versioned = <Schema extends { response: object }>(path: string, summary: string, description: string | undefined, schema: Schema, expensive = false) => {
    const config = expensive ? { ...read, expensive } : read
    if (v2) return { config, schema: { ...tenantRoute(summary, description), ...schema } }
    const successor = `/v2${path.replace(/:(\w+)/g, '{$1}')}`
    const deprecation = `Deprecated: answered for analyst and operator keys until ${V1_TENANT_ROUTES_UNTIL}; tenant keys get 410 and use ${successor}.`
    return {
      config,
      onRequest: goneForTenantKeys(successor),
      schema: {
        ...tenantRoute(summary, description ? `${description} ${deprecation}` : deprecation),
        deprecated: true,
        ...schema,
        response: { ...schema.response, 410: ErrorBody },
      },
    }
  }

  app.get(
    '/tenants/:tenantId/audit',
    versioned('/tenants/:tenantId/audit', 'The tenant audit trail', `Every recorded decision and action, in log order, a page at a time (at most ${MAX_PAGE} entries).`, {
      params: TenantParams,
      querystring: auditQuery(v2 ? 'tenant sequence' : 'global position'),
      response: { 200: v2 ? AuditPageV2Body : AuditPageBody, ...AUTHENTICATED_ERRORS },
    }, true),
    async (request) => {
      const q = request.query
      const pageSize = pageLimit(q.limit, MAX_PAGE, DEFAULT_PAGE)
      const query: AuditTrailQuery = {
        tenantId: request.params.tenantId,
        taskId: q.taskId,
        from: q.from,
        to: q.to,
        eventTypes: listParameter(q.eventType),
        modelVersion: q.modelVersion,
        promptTemplateVersion: q.promptVersion,
        ...(v2 ? { afterSequence: cursor(q.after, 'a tenant sequence') ?? 0n } : { afterPosition: cursor(q.after, 'a global position') }),
        limit: pageSize,
      }
      const entries = await readRecorded(request, query, validateAuditTrailQuery, (valid) => auditTrail(deps.pool, valid))
      const last = entries.at(-1)
      const nextAfter = entries.length === pageSize && last ? (v2 ? last.sequence : last.position).toString() : null
      if (v2) return { entries: jsonified(entries.map(tenantAuditEntry)), nextAfter }
      return { entries: jsonified(entries.map(globalAuditEntry)), nextAfter }
    },
  )

  const TaskBody = v2 ? TaskSummaryV2Body : TaskSummaryBody
  app.get(
    '/tenants/:tenantId/tasks',
    versioned('/tenants/:tenantId/tasks', "The tenant's task summaries", 'Status, current or failed step, attempts, tokens, cost and models of each task, oldest first.', {
      params: TenantParams,
      querystring: TasksQuery,
      response: { 200: z.object({ tasks: z.array(TaskBody) }), ...AUTHENTICATED_ERRORS },
    }),
    async (request) => {
      const tasks = await readRecorded(request, statusPage(request), validateTaskSummaryQuery, (query) => taskSummaries(deps.pool, query))
      return { tasks: jsonified(tasks) }
    },
  )

  app.get(
    '/tenants/:tenantId/tasks/:taskId',
    versioned('/tenants/:tenantId/tasks/:taskId', 'One task summary', undefined, {
      params: TenantParams.extend({ taskId: z.string().describe('the task') }),
      querystring: NoQuery,
      response: { 200: TaskBody, 404: ErrorBody, ...AUTHENTICATED_ERRORS },
    }),
    async (request, reply) => {
      const query = { tenantId: request.params.tenantId, taskId: request.params.taskId }
      request.accessQuery = { ...query }
      const [task] = await taskSummaries(deps.pool, query)
      request.rowsReturned = task ? 1 : 0
      if (!task) {
        request.deniedReason = 'no such task'
        return reply.code(404).send({ error: 'Not Found', message: `no task ${JSON.stringify(query.taskId)} in this tenant's read model` })
      }
      return jsonified(task)
    },
  )

  app.get(
    '/tenants/:tenantId/summary',
    versioned('/tenants/:tenantId/summary', "The tenant's tasks in aggregate", undefined, {
      params: TenantParams,
      querystring: NoQuery,
      response: { 200: v2 ? TenantSummaryV2Body : TenantSummaryBody, ...AUTHENTICATED_ERRORS },
    }),
    async (request) => {
      request.accessQuery = { tenantId: request.params.tenantId }
      const summary = await tenantSummary(deps.pool, request.params.tenantId)
      request.rowsReturned = 1
      return jsonified(summary)
    },
  )

  // The tenant's dead-lettered tasks; on /v1 `/dead-letters` is the old name, kept as a deprecated alias (docs/api.md).
  const deadTasks = '/tenants/:tenantId/dead-tasks'
  for (const url of v2 ? [deadTasks] : [deadTasks, '/tenants/:tenantId/dead-letters']) {
    const alias = url !== deadTasks
    app.get(
      url,
      versioned(
        deadTasks,
        "The tenant's dead-lettered tasks",
        "Tasks that exhausted a step's retries, with every failed attempt and who redrove them, oldest first (docs/dead-letters.md)." +
          (alias ? ' Old name of /v1/tenants/{tenantId}/dead-tasks.' : ''),
        {
          params: TenantParams,
          querystring: DeadLettersQuery,
          response: { 200: z.object({ deadLetters: z.array(v2 ? TaskDeadLetterV2Body : TaskDeadLetterBody) }), ...AUTHENTICATED_ERRORS },
        },
      ),
      async (request) => {
        const deadLetters = await readRecorded(request, statusPage(request), validateTaskDeadLetterQuery, (query) => taskDeadLetters(deps.pool, query))
        return { deadLetters: jsonified(deadLetters) }
      },
    )
  }

  app.get(
    '/tenants/:tenantId/export',
    versioned(
      '/tenants/:tenantId/export',
      'A complete, verifiable export of the tenant',
      'Every event of the tenant in the window, streamed as it is read (format version 2, docs/audit.md): a header line, one ' +
        'record per event numbered by tenant sequence, and a last manifest line holding the counts and the hash-chain ' +
        'verification of each exported stream. A response without the manifest line was cut short (the connection is ' +
        'aborted when the export fails part way). Content type application/x-ndjson (jsonl) or text/csv.',
      {
        params: TenantParams,
        querystring: ExportQuery,
        response: {
          200: {
            description: 'the export: a header line, one record per event, a manifest line',
            content: { 'application/x-ndjson': { schema: z.string() }, 'text/csv': { schema: z.string() } },
          },
          ...AUTHENTICATED_ERRORS,
        },
      },
      true,
    ),
    async (request, reply) => {
      const format = request.query.format ?? 'jsonl'
      const query = { tenantId: request.params.tenantId, from: request.query.from, to: request.query.to }
      // Validated before the response starts, so a bad window is a 400. The row count is not known when the access is
      // recorded (the records are still to be read), so the access log holds none for an export.
      request.accessQuery = { ...validateExportQuery(query), format }
      const lines = exportTenant({ store: deps.store, keyRing: deps.keyRing, clock: deps.now, pacer: exportPacer }, query, format)
      // A byte stream, so at most about a page waits in it: the read pauses while the client is not reading, and a
      // client that goes away destroys the stream, which ends the read at its next page. Fastify aborts the response if
      // the read fails once it has started.
      return reply.type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8').send(Readable.from(lines, { objectMode: false }) as unknown as string) // sent as a stream; the schema documents its text
    },
  )
}
