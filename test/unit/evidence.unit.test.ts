import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { EVIDENCE_DOMAIN, evidenceMessage, signEvidence, verifyEvidence, type SignedEvidence } from '../../historian/evidence/evidence'
import {
  EvidenceKindMismatchError,
  EvidenceSignatureError,
  MalformedEvidenceError,
  UnknownSigningKeyError,
} from '../../historian/evidence/evidenceErrors'
import { publicKeyX, signingKeyId, type PublishedSigningKey, type SigningKeySet, type SigningKeyStore } from '../../historian/evidence/signingKeys'
import { canonicalJson } from '../../historian/integrity/chainHash'

/** A signing key store in memory: one Ed25519 key, published as current. */
function memoryStore(privateKey: KeyObject = generateKeyPairSync('ed25519').privateKey): SigningKeyStore & { published: PublishedSigningKey } {
  const x = publicKeyX(privateKey)
  const kid = signingKeyId(x)
  const published: PublishedSigningKey = { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid, x, status: 'current', createdAt: '2026-12-01T00:00:00.000Z' }
  return {
    published,
    currentSigner: async () => ({ kid, sign: async (message) => sign(null, message, privateKey) }),
    publicKeys: async () => ({ keys: [published] }),
  }
}

const KIND = 'erasure-certificate.v1'
const PAYLOAD = { tenantId: 'acme', scope: { task: 'invoice-42' }, keys: ['k1', 'k2'], at: '2026-12-05T00:00:00Z', by: 'dpo', reason: 'GDPR art. 17' }

/** A JSON round trip, as a document travels: what a verifier receives. */
const received = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T

describe('key IDs', () => {
  it('are the RFC 7638 JWK thumbprint of the public key, in hex (RFC 8037 appendix A.3)', () => {
    // RFC 8037 A.1's key; A.3 gives its thumbprint as base64url.
    const x = '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo'
    expect(signingKeyId(x)).toBe(Buffer.from('kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k', 'base64url').toString('hex'))
    const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x, d: 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A' }, format: 'jwk' })
    expect(publicKeyX(privateKey)).toBe(x)
  })

  it('are stable: the same key gives the same ID, from its private key, its public key or its PEM', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' })
    const ids = [publicKeyX(privateKey), publicKeyX(publicKey), publicKeyX(createPrivateKey(pem))].map(signingKeyId)
    expect(new Set(ids).size).toBe(1)
    expect(ids[0]).toMatch(/^[0-9a-f]{64}$/)
    expect(signingKeyId(publicKeyX(generateKeyPairSync('ed25519').publicKey))).not.toBe(ids[0])
  })
})

describe('signEvidence and verifyEvidence', () => {
  it('round-trip: a signed document verifies with the published keys alone, naming its key', async () => {
    const store = memoryStore()
    const document = await signEvidence(store, KIND, PAYLOAD)
    expect(document).toEqual({ kind: KIND, payload: PAYLOAD, signature: { alg: 'EdDSA', kid: store.published.kid, sig: expect.stringMatching(/^[A-Za-z0-9_-]{86}$/) } })
    const verified = verifyEvidence(received(document), received(await store.publicKeys()), KIND)
    expect(verified).toEqual({ kind: KIND, payload: PAYLOAD, key: store.published })
  })

  it('signs canonical JSON: key order and whitespace do not matter', async () => {
    const store = memoryStore()
    const document = await signEvidence(store, KIND, { b: 2, a: { d: [1, 2], c: 'x' } })
    const reordered = JSON.parse(`{ "signature": ${JSON.stringify(document.signature)}, "payload": {"a": {"c": "x", "d": [1, 2]}, "b": 2}, "kind": "${KIND}" }`) as unknown
    expect(verifyEvidence(reordered, await store.publicKeys(), KIND).payload).toEqual({ a: { c: 'x', d: [1, 2] }, b: 2 })
  })

  it('signs the domain-separated message, so a signature over the bare JSON is not evidence', async () => {
    const { privateKey } = generateKeyPairSync('ed25519')
    const store = memoryStore(privateKey)
    const document = await signEvidence(store, KIND, PAYLOAD)
    expect(evidenceMessage(KIND, PAYLOAD, 'EdDSA', store.published.kid).toString()).toBe(
      EVIDENCE_DOMAIN + canonicalJson({ alg: 'EdDSA', kid: store.published.kid, kind: KIND, payload: PAYLOAD }),
    )
    const bare = sign(null, Buffer.from(canonicalJson({ alg: 'EdDSA', kid: store.published.kid, kind: KIND, payload: PAYLOAD })), privateKey).toString('base64url')
    expect(() => verifyEvidence({ ...document, signature: { ...document.signature, sig: bare } }, { keys: [store.published] }, KIND)).toThrow(EvidenceSignatureError)
  })

  describe('refuses, each in one line', () => {
    const signed = async (): Promise<{ document: SignedEvidence<typeof PAYLOAD>; keys: SigningKeySet; kid: string }> => {
      const store = memoryStore()
      return { document: received(await signEvidence(store, KIND, PAYLOAD)), keys: await store.publicKeys(), kid: store.published.kid }
    }
    const refusal = (run: () => unknown, type: new (...args: never[]) => Error): string => {
      let caught: unknown
      try {
        run()
      } catch (error) {
        caught = error
      }
      expect(caught).toBeInstanceOf(type)
      const message = (caught as Error).message
      expect(message.split('\n')).toHaveLength(1)
      return message
    }

    it('an unknown key ID', async () => {
      const { document, kid } = await signed()
      const other = await memoryStore().publicKeys()
      expect(refusal(() => verifyEvidence(document, other, KIND), UnknownSigningKeyError)).toBe(`signed with key "${kid}", which is not among the published signing keys`)
    })

    it('a published entry that claims the key ID of another key (its thumbprint differs)', async () => {
      const { document, kid } = await signed()
      const impostor = memoryStore().published
      expect(refusal(() => verifyEvidence(document, { keys: [{ ...impostor, kid }] }, KIND), UnknownSigningKeyError)).toContain(kid)
    })

    it('a bad signature', async () => {
      const { document, keys, kid } = await signed()
      const sig = Buffer.from(document.signature.sig, 'base64url')
      sig[10] = sig[10]! ^ 0x01
      const tampered = { ...document, signature: { ...document.signature, sig: sig.toString('base64url') } }
      expect(refusal(() => verifyEvidence(tampered, keys, KIND), EvidenceSignatureError)).toBe(
        `the signature does not verify under key ${kid}: the document's kind, payload or signature was altered after signing`,
      )
    })

    it('an altered payload: a changed, an added and a removed field', async () => {
      const { document, keys } = await signed()
      const { reason: _removed, ...withoutReason } = document.payload
      for (const payload of [{ ...document.payload, by: 'someone else' }, { ...document.payload, extra: true }, withoutReason]) {
        refusal(() => verifyEvidence({ ...document, payload }, keys, KIND), EvidenceSignatureError)
      }
    })

    it('the wrong kind: another kind than expected, and a kind changed to the expected one after signing', async () => {
      const { document, keys } = await signed()
      expect(refusal(() => verifyEvidence(document, keys, 'export-manifest.v1'), EvidenceKindMismatchError)).toBe(
        `evidence of kind "${KIND}" where "export-manifest.v1" was expected`,
      )
      refusal(() => verifyEvidence({ ...document, kind: 'export-manifest.v1' }, keys, 'export-manifest.v1'), EvidenceSignatureError)
    })

    it('a document that is not signed evidence, naming the field', async () => {
      const { document, keys } = await signed()
      expect(refusal(() => verifyEvidence({ kind: KIND, payload: PAYLOAD }, keys, KIND), MalformedEvidenceError)).toBe('not a signed evidence document: signature is missing or malformed')
      expect(refusal(() => verifyEvidence({ ...document, signature: { ...document.signature, alg: 'HS256' } }, keys, KIND), MalformedEvidenceError)).toContain('signature.alg')
      expect(refusal(() => verifyEvidence('{}', keys, KIND), MalformedEvidenceError)).toContain('the document')
    })
  })

  it('refuses to sign a malformed kind', async () => {
    await expect(signEvidence(memoryStore(), 'Not A Kind', {})).rejects.toThrow(/evidence kind must match/)
  })
})
