import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { SigningKeyStatus } from '../../historian/evidence/signingKeys'
import { PUBLIC_ROUTE } from '../accessControl'
import type { ApiDeps } from '../apiDeps'
import { ErrorBody, NoQuery } from '../schemas'

/** The route that publishes the evidence signing keys. */
export const SIGNING_KEYS_ROUTE = '/keys/signing'

/** One published key: an Ed25519 public JWK (RFC 8037) with its status and times. */
const PublishedSigningKey = z.object({
  kty: z.literal('OKP'),
  crv: z.literal('Ed25519'),
  alg: z.literal('EdDSA'),
  use: z.literal('sig'),
  kid: z.string().describe('the RFC 7638 JWK thumbprint (SHA-256) of the key, 64 hex digits'),
  x: z.string().describe('the raw 32-byte public key, base64url'),
  status: z.enum([SigningKeyStatus.current, SigningKeyStatus.retired]).describe('current: signs now; retired: signs no more, still verifies what it signed'),
  createdAt: z.string(),
  retiredAt: z.string().optional(),
})

/** The answer of a server started without ANNALIST_SIGNING_KEY_DIR. */
export const NO_SIGNING_KEYS: ErrorBody = { error: 'Service Unavailable', message: 'this API server publishes no signing keys (ANNALIST_SIGNING_KEY_DIR is not set)' }

/**
 * GET /v1/keys/signing: the public keys that verify Annalist's signed evidence, as a JWK Set. Public like /healthz: a
 * verifier needs no API key and no secret (docs/evidence.md).
 */
export const signingKeyRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.get(
    SIGNING_KEYS_ROUTE,
    {
      config: PUBLIC_ROUTE,
      schema: {
        tags: ['evidence'],
        summary: 'The public keys that verify signed evidence (JWK Set)',
        description:
          'Every Ed25519 key that signed or signs evidence (erasure certificates, and later digests and evidence packs): the current one and the ' +
          'retired ones, which still verify what they signed. A document names its key in signature.kid (docs/evidence.md). No API key needed.',
        querystring: NoQuery,
        response: { 200: z.object({ keys: z.array(PublishedSigningKey) }), 400: ErrorBody, 503: ErrorBody },
      },
    },
    async (_request, reply) => {
      if (!deps.signingKeys) return reply.code(503).send(NO_SIGNING_KEYS)
      const { keys } = await deps.signingKeys.publicKeys()
      return { keys: [...keys] }
    },
  )
}
