import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { apiKeyScope, KEY_REVOCATION_ROUTE, revokeApiKey } from '../keys'
import type { ApiDeps } from '../apiDeps'
import { requires, type TargetTenantOf } from '../accessControl'
import { AUTHENTICATED_ERRORS, ErrorBody, TenantParams } from '../schemas'
import { MAX_CANCEL_REASON_LENGTH } from '../../historian/events'

const operatorRoute = (summary: string, description: string) => ({ tags: ['operator'], summary, description, security: [{ bearerAuth: [] }] })

/**
 * The tenant of the key in the path, for key.revoke; an unknown key has none, so a scoped operator is refused exactly
 * as for another tenant's key (the lookup runs only for scoped keys).
 */
const revokedKeyTenant: TargetTenantOf = async (request, pool) => {
  const keyId = (request.params as { keyId?: unknown }).keyId
  return typeof keyId === 'string' ? ((await apiKeyScope(pool, keyId))?.tenantId ?? null) : null
}

// Fastify hands a route without a request body null.
const NoBody = z.strictObject({}).nullish()
const RedriveBody = z.strictObject({ note: z.string().max(2_000).optional().describe('why, recorded with the new run') }).nullish()
const CancelBody = z.strictObject({
  reason: z.string().trim().min(1).max(MAX_CANCEL_REASON_LENGTH).describe('why, recorded in AgentTaskCancelled'),
  wait: z.boolean().default(false).describe('answer when the run has recorded how it ended (200) rather than when it accepted the cancel (202)'),
})

/** The answer of a route that needs Temporal on a server without a connection to it. */
const NO_TEMPORAL = { error: 'Service Unavailable', message: 'this API server has no Temporal connection (TEMPORAL_ADDRESS is not set)' }

/** The routes that change state: operator keys (api/roles.ts), a scoped operator only on its own tenant. */
export const operatorRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.post(
    KEY_REVOCATION_ROUTE,
    {
      config: requires('key.revoke', revokedKeyTenant),
      schema: {
        ...operatorRoute('Revoke an API key', "The key stops working at once. A scoped operator may revoke only its tenant's keys; revoking again keeps the first time."),
        params: z.object({ keyId: z.string().max(64).describe('the key ID (from `annalist api-keys list`)') }),
        body: NoBody,
        response: { 200: z.object({ keyId: z.string(), revokedAt: z.string() }), 404: ErrorBody, ...AUTHENTICATED_ERRORS },
      },
    },
    async (request) => {
      const { keyId } = request.params
      request.accessQuery = { keyId }
      const { revokedAt } = await revokeApiKey(deps.pool, keyId)
      request.rowsReturned = 1
      return { keyId, revokedAt: revokedAt.toISOString() }
    },
  )

  app.post(
    '/tenants/:tenantId/tasks/:taskId/redrive',
    {
      config: requires('task.redrive'),
      schema: {
        ...operatorRoute(
          'Redrive a dead-lettered task',
          'Starts the task again from its failed step as a new run linked to the dead-lettered one, recorded as requested by the API key (docs/dead-letters.md). ' +
            '409 when the task is not dead-lettered or was redriven already; 503 when the server has no Temporal connection.',
        ),
        params: TenantParams.extend({ taskId: z.string().describe('the task') }),
        body: RedriveBody,
        response: {
          202: z.object({ workflowId: z.string(), runId: z.string(), parentRunId: z.string(), fromStep: z.string() }),
          409: ErrorBody,
          503: ErrorBody,
          ...AUTHENTICATED_ERRORS,
        },
      },
    },
    async (request, reply) => {
      const { tenantId, taskId } = request.params
      request.accessQuery = { tenantId, taskId }
      if (!deps.redriveTask) {
        request.deniedReason = 'no Temporal connection'
        return reply.code(503).send(NO_TEMPORAL)
      }
      const note = request.body?.note
      const started = await deps.redriveTask({ tenantId, taskId, requestedBy: `api-key:${request.principal!.keyId}`, ...(note === undefined ? {} : { note }) })
      request.rowsReturned = 1
      return reply.code(202).send(started)
    },
  )

  app.post(
    '/tenants/:tenantId/tasks/:taskId/cancel',
    {
      config: requires('task.cancel'),
      schema: {
        ...operatorRoute(
          'Cancel a running task',
          'Cancels the task\'s running pipeline through its cancel Update, recorded as requested by the API key with the reason given: the run compensates its side effects and records AgentTaskCancelled (docs/cancellation.md). ' +
            '202 once the run accepted the cancel; with `wait`, 200 with how the run ended (it may have completed or failed before the cancel arrived). 409 when the task has no running pipeline; 503 when the server has no Temporal connection.',
        ),
        params: TenantParams.extend({ taskId: z.string().describe('the task') }),
        body: CancelBody,
        response: {
          200: CancelAnswer,
          202: CancelAnswer,
          409: ErrorBody,
          503: ErrorBody,
          ...AUTHENTICATED_ERRORS,
        },
      },
    },
    async (request, reply) => {
      const { tenantId, taskId } = request.params
      request.accessQuery = { tenantId, taskId, wait: request.body.wait }
      if (!deps.cancelTask) {
        request.deniedReason = 'no Temporal connection'
        return reply.code(503).send(NO_TEMPORAL)
      }
      const answer = await deps.cancelTask({ tenantId, taskId, requestedBy: `api-key:${request.principal!.keyId}`, reason: request.body.reason, wait: request.body.wait })
      request.rowsReturned = 1
      return reply.code(answer.status === 'accepted' ? 202 : 200).send(answer)
    },
  )
}

/** What the cancel route answers. */
const CancelAnswer = z.object({
  workflowId: z.string(),
  runId: z.string(),
  status: z.enum(['accepted', 'cancelled', 'completed', 'failed']),
  terminalEventId: z.string().optional(),
})
