import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import { z } from 'zod'
import { canonicalJson } from '../integrity/chainHash'
import { EvidenceKindMismatchError, EvidenceSignatureError, MalformedEvidenceError, UnknownSigningKeyError } from './evidenceErrors'
import { signingKeyId, type PublishedSigningKey, type SigningKeySet, type SigningKeyStore } from './signingKeys'

/**
 * Signed evidence: a document anyone can check with the published public keys and no secret (docs/evidence.md).
 * Erasure certificates, digests, export manifests and evidence packs are kinds of it.
 */

/** What a kind looks like: a short lowercase name with dots or dashes, e.g. `erasure-certificate.v1`. */
export const EVIDENCE_KIND = /^[a-z][a-z0-9.-]{0,63}$/

/** The prefix of every signed message, so no signature made for another purpose can pass as evidence, and back. */
export const EVIDENCE_DOMAIN = 'annalist-evidence/v1\n'

/** The signature block of a document: the algorithm, the key's ID and the 64-byte signature as base64url. */
export interface EvidenceSignature {
  readonly alg: 'EdDSA'
  readonly kid: string
  readonly sig: string
}

/** A signed evidence document. */
export interface SignedEvidence<P = unknown> {
  readonly kind: string
  readonly payload: P
  readonly signature: EvidenceSignature
}

/** What verification established: the kind and payload, and which published key signed it, with its status. */
export interface VerifiedEvidence<P = unknown> {
  readonly kind: string
  readonly payload: P
  readonly key: PublishedSigningKey
}

/**
 * The bytes signed: the domain prefix, then the RFC 8785 canonical JSON of the algorithm, key ID, kind and payload. Key
 * order and whitespace therefore never matter, and neither the kind nor the key ID can be swapped without breaking it.
 */
export function evidenceMessage(kind: string, payload: unknown, alg: string, kid: string): Buffer {
  return Buffer.from(EVIDENCE_DOMAIN + canonicalJson({ alg, kid, kind, payload }), 'utf8')
}

function checkedKind(kind: string): string {
  if (!EVIDENCE_KIND.test(kind)) throw new RangeError(`evidence kind must match ${EVIDENCE_KIND.source}, got ${JSON.stringify(kind.slice(0, 64))}`)
  return kind
}

/** Signs `payload` (any JSON value) as evidence of `kind` with the store's current key. */
export async function signEvidence<P>(store: SigningKeyStore, kind: string, payload: P): Promise<SignedEvidence<P>> {
  const signer = await store.currentSigner()
  const signature = await signer.sign(evidenceMessage(checkedKind(kind), payload, 'EdDSA', signer.kid))
  return { kind, payload, signature: { alg: 'EdDSA', kid: signer.kid, sig: Buffer.from(signature).toString('base64url') } }
}

const Base64Url = z.string().regex(/^[A-Za-z0-9_-]+$/)
const Document = z.object({
  kind: z.string(),
  payload: z.unknown().refine((value) => value !== undefined),
  signature: z.object({ alg: z.literal('EdDSA'), kid: z.string().min(1), sig: Base64Url.length(86) }),
})

/** The shape check of a document, naming the first bad field. */
function parsedDocument(document: unknown): z.infer<typeof Document> {
  const parsed = Document.safeParse(document)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]!
  throw new MalformedEvidenceError(issue.path.length > 0 ? issue.path.join('.') : 'the document')
}

/**
 * The published key named `kid`, as a public key. Only a key whose ID is its own thumbprint counts: a JWK Set entry
 * that claims another key's ID is ignored, so `kid` cannot be pointed at a key of the forger's choosing.
 */
function publishedKey(publicKeys: SigningKeySet, kid: string): { key: PublishedSigningKey; publicKey: KeyObject } {
  const key = publicKeys.keys.find((candidate) => candidate.kid === kid && candidate.kty === 'OKP' && candidate.crv === 'Ed25519' && signingKeyId(candidate.x) === kid)
  if (!key) throw new UnknownSigningKeyError(kid)
  return { key, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: key.x }, format: 'jwk' }) }
}

/**
 * Verifies a signed evidence document against the published keys (a JWK Set, from `annalist keys public` or GET
 * /v1/keys/signing), needing no secret. Refuses, each with its own one-line error: a malformed document, evidence of
 * another kind than `expectedKind`, a key ID that is not published, and a signature that does not verify (an altered
 * payload, kind or signature). A retired key still verifies what it signed.
 */
export function verifyEvidence<P = unknown>(document: unknown, publicKeys: SigningKeySet, expectedKind: string): VerifiedEvidence<P> {
  const { kind, payload, signature } = parsedDocument(document)
  if (kind !== expectedKind) throw new EvidenceKindMismatchError(expectedKind, kind)
  const { key, publicKey } = publishedKey(publicKeys, signature.kid)
  const valid = verify(null, evidenceMessage(kind, payload, signature.alg, signature.kid), publicKey, Buffer.from(signature.sig, 'base64url'))
  if (!valid) throw new EvidenceSignatureError(signature.kid)
  return { kind, payload: payload as P, key }
}
