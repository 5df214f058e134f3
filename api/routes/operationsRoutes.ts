import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import type { Registry } from 'prom-client'
import { z } from 'zod'
import { PUBLIC_ROUTE, requires } from '../accessControl'

/** Health, the OpenAPI document and Prometheus metrics. Health and the document are public; metrics need operations.read (analyst or global operator). */
export const operationsRoutes: FastifyPluginAsyncZod<{ registry: Registry }> = async (app, { registry }) => {
  app.get(
    '/healthz',
    { config: PUBLIC_ROUTE, schema: { tags: ['operations'], summary: 'Liveness', response: { 200: z.object({ status: z.literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  )

  app.get('/openapi.json', { config: PUBLIC_ROUTE, schema: { hide: true } }, async () => app.swagger())

  app.get(
    '/metrics',
    {
      config: requires('operations.read'),
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics (text exposition format)',
        security: [{ bearerAuth: [] }],
      },
    },
    async (request, reply) => {
      const text = await registry.metrics()
      request.rowsReturned = 0
      return reply.type(registry.contentType).send(text)
    },
  )
}
