import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import { canonicalJson } from '../integrity/chainHash'

/**
 * Ed25519 signing keys for evidence that leaves the system (docs/evidence.md): their IDs, their published form (JWK,
 * RFC 8037) and the store a signer draws them from. HMAC stays inside (chain links, checkpoints); an outsider checks
 * evidence with these public keys alone.
 */

/** A signing key's place in rotation: `current` signs; `retired` signs no more but stays published for verification. */
export const SigningKeyStatus = { current: 'current', retired: 'retired' } as const
export type SigningKeyStatus = (typeof SigningKeyStatus)[keyof typeof SigningKeyStatus]

/** One published signing key: an Ed25519 public JWK (RFC 8037) plus its status and times (ISO 8601). */
export interface PublishedSigningKey {
  readonly kty: 'OKP'
  readonly crv: 'Ed25519'
  readonly alg: 'EdDSA'
  readonly use: 'sig'
  readonly kid: string
  /** The raw 32-byte public key, base64url. */
  readonly x: string
  readonly status: SigningKeyStatus
  readonly createdAt: string
  /** When it stopped signing; absent while current. */
  readonly retiredAt?: string
}

/** The published keys as a JWK Set (RFC 7517 section 5): what `annalist keys public` prints and GET /v1/keys/signing answers. */
export interface SigningKeySet {
  readonly keys: readonly PublishedSigningKey[]
}

/**
 * A key's ID: its RFC 7638 JWK thumbprint, SHA-256 over the canonical `{"crv":"Ed25519","kty":"OKP","x":...}`
 * (RFC 8037 section 2), written as 64 lowercase hex digits. Anyone holding the public key derives the same ID. Hex
 * rather than the usual base64url because 43 base64url characters are the shape of an API key, which
 * historian/redact.ts removes from every message.
 */
export function signingKeyId(x: string): string {
  return createHash('sha256').update(canonicalJson({ crv: 'Ed25519', kty: 'OKP', x })).digest('hex')
}

/** The raw public key (JWK `x`, base64url) of an Ed25519 public or private key. */
export function publicKeyX(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key
  const jwk = publicKey.export({ format: 'jwk' })
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new TypeError('not an Ed25519 key')
  return jwk.x
}

/** Signs messages with one key; a KMS-backed signer calls its Sign operation here. */
export interface EvidenceSigner {
  /** The ID of the key that signs (signingKeyId of its public key). */
  readonly kid: string
  /** The 64-byte Ed25519 signature of `message` (pure EdDSA over the whole message, RFC 8032). */
  sign(message: Uint8Array): Promise<Uint8Array>
}

/**
 * Where signing keys live, kept apart from the database: the current key's signer and every published public key.
 * `FileSigningKeyStore` keeps them in a private directory; a KMS implements the same two methods (docs/evidence.md).
 */
export interface SigningKeyStore {
  /** A signer with the current key. */
  currentSigner(): Promise<EvidenceSigner>
  /** Every key a verifier may need, current and retired, as a JWK Set. */
  publicKeys(): Promise<SigningKeySet>
}
