import { Readable } from 'node:stream'
import type { FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { auditTrail, validateAuditTrailQuery, type AuditTrailQuery } from '../../projections/auditTimeline/query'
import { ExportPacer, exportTenant, validateExportQuery } from '../../projections/export/tenantExport'
import { InvalidQueryError, pageLimit } from '../../projections/queryFilters'
import { TaskStatus } from '../../projections/taskSummary/projection'
import { taskSummaries, tenantSummary, validateTaskSummaryQuery } from '../../projections/taskSummary/query'
import { taskDeadLetters, validateTaskDeadLetterQuery } from '../../projections/taskDeadLetters/query'
import type { ApiDeps } from '../apiDeps'
import { requires } from '../accessControl'
import { AUTHENTICATED_ERRORS, AuditPageBody, ErrorBody, jsonified, NoQuery, TaskSummaryBody, TenantParams, TenantSummaryBody } from '../schemas'

/** Most entries or tasks one page may hold. */
export const MAX_PAGE = 1_000
const DEFAULT_PAGE = 100
const MAX_POSITION = 9_223_372_036_854_775_807n

const once = (description: string) => z.string().optional().describe(description)
const instant = (description: string) => once(`${description}: ISO 8601 date or time with a zone, e.g. 2026-02-03T14:22:10Z`)
const limit = once(`page size, 1 to ${MAX_PAGE} (default ${DEFAULT_PAGE})`)

const AuditQuery = z.strictObject({
  taskId: once('only this task'),
  from: instant('only events that occurred at or after this time'),
  to: instant('only events that occurred before this time'),
  eventType: z
    .union([z.string(), z.array(z.string()).max(50)])
    .optional()
    .describe('only these event types: repeat the parameter or separate them with commas'),
  modelVersion: once('only events of model calls with this model version'),
  promptVersion: once('only events of model calls with this prompt-template version'),
  after: once('cursor: only entries after this global position (the nextAfter of the previous page)'),
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

/** One dead-lettered run of a task. */
const TaskDeadLetterBody = z
  .looseObject({
    tenantId: z.string(),
    taskId: z.string(),
    runId: z.string(),
    failedStep: z.string(),
    errorCode: z.string(),
    attempts: z.number(),
    retryState: z.string(),
    failures: z.array(z.looseObject({ eventId: z.string().nullable(), attempt: z.number(), errorCode: z.string() })),
    status: z.enum(['open', 'redriven']),
    redrivenBy: z.string().nullable(),
  })
  .meta({ id: 'TaskDeadLetter' })

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

/** `after` as a global position; a value out of the 64-bit range is a bad filter, not a server error. */
function afterPosition(value: string | undefined): bigint | undefined {
  if (value === undefined) return undefined
  if (!/^\d{1,19}$/.test(value) || BigInt(value) > MAX_POSITION) throw new InvalidQueryError('after', `${JSON.stringify(value.slice(0, 32))} is not a global position (a whole number)`)
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

/** The tenant routes: audit trail, task summaries, tenant summary, dead-lettered tasks, export. Every one reads only the tenant in its path. */
export const tenantRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  const config = requires('tenant.read')
  // One per server: its exports take turns with each other and leave most of the thread to other requests.
  const exportPacer = new ExportPacer()

  app.get(
    '/tenants/:tenantId/audit',
    {
      config: { ...config, expensive: true },
      schema: {
        ...tenantRoute('The tenant audit trail', `Every recorded decision and action, in log order, a page at a time (at most ${MAX_PAGE} entries).`),
        params: TenantParams,
        querystring: AuditQuery,
        response: { 200: AuditPageBody, ...AUTHENTICATED_ERRORS },
      },
    },
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
        afterPosition: afterPosition(q.after),
        limit: pageSize,
      }
      const entries = await readRecorded(request, query, validateAuditTrailQuery, (valid) => auditTrail(deps.pool, valid))
      const last = entries.at(-1)
      return { entries: jsonified(entries), nextAfter: entries.length === pageSize && last ? last.position.toString() : null }
    },
  )

  app.get(
    '/tenants/:tenantId/tasks',
    {
      config,
      schema: {
        ...tenantRoute("The tenant's task summaries", 'Status, current or failed step, attempts, tokens, cost and models of each task, oldest first.'),
        params: TenantParams,
        querystring: TasksQuery,
        response: { 200: z.object({ tasks: z.array(TaskSummaryBody) }), ...AUTHENTICATED_ERRORS },
      },
    },
    async (request) => {
      const tasks = await readRecorded(request, statusPage(request), validateTaskSummaryQuery, (query) => taskSummaries(deps.pool, query))
      return { tasks: jsonified(tasks) }
    },
  )

  app.get(
    '/tenants/:tenantId/tasks/:taskId',
    {
      config,
      schema: {
        ...tenantRoute('One task summary'),
        params: TenantParams.extend({ taskId: z.string().describe('the task') }),
        querystring: NoQuery,
        response: { 200: TaskSummaryBody, 404: ErrorBody, ...AUTHENTICATED_ERRORS },
      },
    },
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
    {
      config,
      schema: {
        ...tenantRoute("The tenant's tasks in aggregate"),
        params: TenantParams,
        querystring: NoQuery,
        response: { 200: TenantSummaryBody, ...AUTHENTICATED_ERRORS },
      },
    },
    async (request) => {
      request.accessQuery = { tenantId: request.params.tenantId }
      const summary = await tenantSummary(deps.pool, request.params.tenantId)
      request.rowsReturned = 1
      return jsonified(summary)
    },
  )

  // The tenant's dead-lettered tasks; `/dead-letters` is the old name, kept as a deprecated alias (docs/api.md).
  for (const [url, deprecated] of [
    ['/tenants/:tenantId/dead-tasks', false],
    ['/tenants/:tenantId/dead-letters', true],
  ] as const) {
    app.get(
      url,
      {
        config,
        schema: {
          ...tenantRoute(
            "The tenant's dead-lettered tasks",
            "Tasks that exhausted a step's retries, with every failed attempt and who redrove them, oldest first (docs/dead-letters.md)." +
              (deprecated ? ' Deprecated name of /v1/tenants/{tenantId}/dead-tasks, answered the same until the issue after next.' : ''),
          ),
          ...(deprecated ? { deprecated: true } : {}),
          params: TenantParams,
          querystring: DeadLettersQuery,
          response: { 200: z.object({ deadLetters: z.array(TaskDeadLetterBody) }), ...AUTHENTICATED_ERRORS },
        },
      },
      async (request) => {
        const deadLetters = await readRecorded(request, statusPage(request), validateTaskDeadLetterQuery, (query) => taskDeadLetters(deps.pool, query))
        return { deadLetters: jsonified(deadLetters) }
      },
    )
  }

  app.get(
    '/tenants/:tenantId/export',
    {
      config: { ...config, expensive: true },
      schema: {
        ...tenantRoute(
          'A complete, verifiable export of the tenant',
          'Every event of the tenant in the window, streamed as it is read (format version 2, docs/audit.md): a header line, one ' +
            'record per event numbered by tenant sequence, and a last manifest line holding the counts and the hash-chain ' +
            'verification of each exported stream. A response without the manifest line was cut short (the connection is ' +
            'aborted when the export fails part way). Content type application/x-ndjson (jsonl) or text/csv.',
        ),
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
    },
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
