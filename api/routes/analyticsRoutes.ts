import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import {
  costPerTenantPerDay,
  FAILURE_STEPS,
  FailureKind,
  failuresByStep,
  modelInvocationStats,
  tenantsWithFailures,
  toolUsage,
} from '../../projections/analytics/query'
import { projectionLag } from '../../projections/lag'
import { defaultProjections } from '../../projections/defaultProjections'
import type { ApiDeps } from '../apiDeps'
import { requires } from '../accessControl'
import { AnalyticsRowsBody, AUTHENTICATED_ERRORS, jsonified, NoQuery, ProjectionLagBody } from '../schemas'

const once = (description: string) => z.string().optional().describe(description)
const window = {
  from: once('start of the window (inclusive): ISO 8601 date or time with a zone'),
  to: once('end of the window (exclusive; default now): ISO 8601 date or time with a zone'),
}
const tenantFilter = once('only this tenant')
const step = z.enum(FAILURE_STEPS).describe('the pipeline step')
const kind = z.enum(FailureKind).optional().describe('task: tasks that gave up; attempt: failed attempts and tool calls; any (default): both')

const analystRoute = (summary: string, description: string) => ({ tags: ['analytics'], summary, description, security: [{ bearerAuth: [] }] })

/** The cross-tenant analytics (analytics.read) and projection lag (operations.read): keys without a tenant scope only. */
export const analyticsRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  const config = { ...requires('analytics.read'), expensive: true }
  const response = { 200: AnalyticsRowsBody, ...AUTHENTICATED_ERRORS }

  /** One analytics route: the query's rows for the validated filters, in the default window when none is given. */
  function rowsRoute<Query extends z.ZodObject>(
    url: string,
    text: { summary: string; description: string },
    querystring: Query,
    run: (filters: z.output<Query>, now: Date | undefined) => Promise<readonly object[]>,
  ): void {
    app.get(url, { config, schema: { ...analystRoute(text.summary, text.description), querystring, response } }, async (request) => {
      const filters = request.query as z.output<Query>
      request.accessQuery = { ...filters }
      const rows = await run(filters, deps.now?.())
      request.rowsReturned = rows.length
      return { rows: jsonified(rows) as Record<string, unknown>[] }
    })
  }

  rowsRoute(
    '/analytics/failures',
    { summary: 'Failures by tenant, step and error code', description: 'Default window: the last 24 hours.' },
    z.strictObject({ ...window, step: step.optional(), errorCode: once('only this error code'), tenantId: tenantFilter, kind }),
    (filters, now) => failuresByStep(deps.pool, filters, now),
  )
  rowsRoute(
    '/analytics/failures/tenants',
    { summary: 'Tenants with failures at one step', description: 'E.g. step=synthesize: which tenants had synthesis failures in the last 24 hours (the default window).' },
    z.strictObject({ ...window, step, kind }),
    (filters, now) => tenantsWithFailures(deps.pool, filters, now),
  )
  const tenantWindow = z.strictObject({ ...window, tenantId: tenantFilter })
  rowsRoute(
    '/analytics/models',
    {
      summary: 'Model invocation stats per model version',
      description:
        'Count, failures, p50/p99 latency, reported tokens and cost over every call (failedCallCostUsd: the failed calls\' part), ' +
        'and the calls without reported usage with their estimate, which is not in the figures. Default window: 30 days.',
    },
    tenantWindow,
    (filters, now) => modelInvocationStats(deps.pool, filters, now),
  )
  rowsRoute(
    '/analytics/costs',
    {
      summary: 'Cost per tenant per UTC day',
      description:
        'Reported cost over every call with the failed calls\' part, the estimated cost of calls without reported usage (not in costUsd), ' +
        'reported tokens and tasks. Default window: 30 days.',
    },
    tenantWindow,
    (filters, now) => costPerTenantPerDay(deps.pool, filters, now),
  )
  rowsRoute(
    '/analytics/tools',
    { summary: 'Tool usage and failure rate', description: 'Calls, failures, failure rate and p50 latency per tool. Default window: 30 days.' },
    tenantWindow,
    (filters, now) => toolUsage(deps.pool, filters, now),
  )

  app.get(
    '/projections/lag',
    {
      config: requires('operations.read'),
      schema: {
        ...analystRoute('How far each projection is behind the event log', 'Checkpoint, head position, events behind, age of the oldest unprojected event, dead letters.'),
        querystring: NoQuery,
        response: { 200: ProjectionLagBody, ...AUTHENTICATED_ERRORS },
      },
    },
    async (request) => {
      const lags = await projectionLag(
        deps.pool,
        deps.store,
        defaultProjections().map((projection) => projection.name),
        deps.now?.(),
      )
      request.rowsReturned = lags.length
      return { projections: jsonified(lags) }
    },
  )
}
