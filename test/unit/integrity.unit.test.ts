import { createHmac, hkdfSync, randomBytes } from 'node:crypto'
import { mkdtempSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig, requireIntegrityKeyRing } from '../../cli/runtime/config'
import { demoIntegrityKey } from '../../dev/demo/demoIntegrityKey'
import { anchorHash, canonicalJson, linkHash, storedIntegrity } from '../../historian/integrity/chainHash'
import { generateIntegrityKey, parseIntegrityKey, TenantKeyRing } from '../../historian/integrity/tenantKeyRing'
import { InvalidIdentifierError } from '../../historian/streams'

const MASTER_HEX = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff'

describe('canonical JSON', () => {
  it('is the same text whatever the key order, and has no whitespace', () => {
    const a = { b: 1, a: { y: [3, { q: 1, p: 2 }], x: 'é' }, c: null }
    const b = { c: null, a: { x: 'é', y: [3, { p: 2, q: 1 }] }, b: 1 }
    expect(canonicalJson(a)).toBe(canonicalJson(b))
    expect(canonicalJson(a)).toBe('{"a":{"x":"é","y":[3,{"p":2,"q":1}]},"b":1,"c":null}')
  })

  it('writes numbers in their shortest ECMAScript form, whatever notation they arrived in', () => {
    expect(canonicalJson(JSON.parse('{"n":[1.0,1e-7,0.0000001,1E21,250.50,-0]}'))).toBe('{"n":[1,1e-7,1e-7,1e+21,250.5,0]}')
  })

  it('drops undefined members as JSON.stringify does, so what is hashed is what is stored', () => {
    const value = { kept: 1, dropped: undefined, at: new Date('2026-01-15T09:00:00.000Z') }
    expect(canonicalJson(value)).toBe(canonicalJson(JSON.parse(JSON.stringify(value))))
  })

  it('refuses values with no JSON form', () => {
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(/NaN/)
    expect(() => canonicalJson(undefined)).toThrow(/no JSON form/)
  })
})

describe('TenantKeyRing', () => {
  it('derives each tenant key with HKDF-SHA256 (info annalist:tenant:<id>), different per tenant and per master key', () => {
    const ring = TenantKeyRing.fromText(MASTER_HEX)
    const expected = Buffer.from(hkdfSync('sha256', Buffer.from(MASTER_HEX, 'hex'), Buffer.alloc(0), 'annalist:tenant:acme', 32))
    expect(ring.keyFor('acme').equals(expected)).toBe(true)
    expect(ring.keyFor('acme').equals(ring.keyFor('globex'))).toBe(false)
    expect(ring.keyFor('acme').equals(TenantKeyRing.fromText(generateIntegrityKey()).keyFor('acme'))).toBe(false)
    expect(ring.keyFor('acme')).toHaveLength(32)
  })

  it('refuses an invalid tenant ID before deriving anything', () => {
    expect(() => TenantKeyRing.fromText(MASTER_HEX).keyFor('Acme-1')).toThrow(InvalidIdentifierError)
  })

  it('reads hex and base64 (standard and URL-safe) keys of at least 32 bytes, and nothing else', () => {
    const raw = randomBytes(48)
    expect(parseIntegrityKey(raw.toString('hex')).equals(raw)).toBe(true)
    expect(parseIntegrityKey(` ${raw.toString('base64')}\n`).equals(raw)).toBe(true)
    expect(parseIntegrityKey(raw.toString('base64url')).equals(raw)).toBe(true)
    expect(() => parseIntegrityKey(randomBytes(16).toString('hex'))).toThrow(/decodes to 16 bytes; at least 32 are needed/)
    expect(() => parseIntegrityKey('not a key!')).toThrow(/neither hex nor base64/)
    expect(() => parseIntegrityKey('  ')).toThrow(/is empty/)
    expect(parseIntegrityKey(generateIntegrityKey())).toHaveLength(32)
  })

  it('never prints or serializes the master key', () => {
    const ring = TenantKeyRing.fromText(MASTER_HEX)
    expect(inspect(ring)).toBe('TenantKeyRing [redacted]')
    expect(JSON.stringify({ ring })).toBe('{"ring":"TenantKeyRing [redacted]"}')
    expect(`${inspect({ config: ring })}${JSON.stringify(ring)}`).not.toContain('00112233')
  })
})

describe('anchor and link hashes', () => {
  const key = TenantKeyRing.fromText(MASTER_HEX).keyFor('acme')
  const content = {
    streamName: 'tenant_acme-t1',
    revision: 3n,
    eventId: '0b7d1c8e-2f1a-5b3c-9d4e-5f6a7b8c9d0e',
    type: 'ToolCallExecuted',
    data: { toolName: 'search', result: { hits: 3 } },
    metadata: { tenantId: 'acme', schemaVersion: 1 },
  }

  it('anchor = HMAC-SHA256(tenantKey, "anchor:" + streamName)', () => {
    expect(anchorHash(key, 'tenant_acme-t1')).toBe(createHmac('sha256', key).update('anchor:tenant_acme-t1').digest('hex'))
    expect(anchorHash(key, 'tenant_acme-t1')).not.toBe(anchorHash(key, 'tenant_acme-t2'))
  })

  it('hash = HMAC-SHA256(tenantKey, prevHash || canonical content without metadata.integrity)', () => {
    const prevHash = 'ab'.repeat(32)
    const canonical =
      '{"data":{"result":{"hits":3},"toolName":"search"},"eventId":"0b7d1c8e-2f1a-5b3c-9d4e-5f6a7b8c9d0e",' +
      '"metadata":{"schemaVersion":1,"tenantId":"acme"},"revision":"3","streamName":"tenant_acme-t1","type":"ToolCallExecuted"}'
    const expected = createHmac('sha256', key).update(prevHash + canonical).digest('hex')
    expect(linkHash(key, prevHash, content)).toBe(expected)
    // The stored integrity link is not part of what it hashes.
    expect(linkHash(key, prevHash, { ...content, metadata: { ...content.metadata, integrity: { prevHash, hash: expected } } })).toBe(expected)
  })

  it('changes with every input: previous hash, revision, ID, type, data, metadata, stream and key', () => {
    const prevHash = 'cd'.repeat(32)
    const base = linkHash(key, prevHash, content)
    const variants = [
      linkHash(key, 'ce'.repeat(32), content),
      linkHash(key, prevHash, { ...content, revision: 4n }),
      linkHash(key, prevHash, { ...content, eventId: '0b7d1c8e-2f1a-5b3c-9d4e-5f6a7b8c9d0f' }),
      linkHash(key, prevHash, { ...content, type: 'ToolCallFailed' }),
      linkHash(key, prevHash, { ...content, data: { ...content.data, result: { hits: 4 } } }),
      linkHash(key, prevHash, { ...content, metadata: { ...content.metadata, schemaVersion: 2 } }),
      linkHash(key, prevHash, { ...content, streamName: 'tenant_acme-t2' }),
      linkHash(TenantKeyRing.fromText(MASTER_HEX).keyFor('globex'), prevHash, content),
    ]
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1)
  })

  it('reads a stored integrity link only when it is well formed', () => {
    const link = { prevHash: 'ab'.repeat(32), hash: 'cd'.repeat(32) }
    expect(storedIntegrity({ integrity: link })).toEqual(link)
    expect(storedIntegrity({ integrity: { ...link, hash: 'xyz' } })).toBeUndefined()
    expect(storedIntegrity({})).toBeUndefined()
    expect(storedIntegrity(undefined)).toBeUndefined()
  })
})

describe('integrity key configuration', () => {
  const scratch = () => mkdtempSync(path.join(tmpdir(), 'annalist-key-'))

  it('reads the key from ANNALIST_INTEGRITY_KEY or from the file ANNALIST_INTEGRITY_KEY_FILE names', () => {
    const key = generateIntegrityKey()
    const inline = loadConfig({ ANNALIST_INTEGRITY_KEY: key }).integrityKeyRing!
    const file = path.join(scratch(), 'key')
    writeFileSync(file, `${key}\n`)
    const fromFile = loadConfig({ ANNALIST_INTEGRITY_KEY_FILE: file }).integrityKeyRing!
    expect(inline.keyFor('acme').equals(fromFile.keyFor('acme'))).toBe(true)
    expect(loadConfig({}).integrityKeyRing).toBeUndefined()
  })

  it('names the variable when the key is malformed, unreadable, doubly set or missing', () => {
    const attempt = (env: NodeJS.ProcessEnv) => {
      try {
        requireIntegrityKeyRing(loadConfig(env))
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError)
        return (error as ConfigError).message
      }
      throw new Error('expected a ConfigError')
    }
    expect(attempt({ ANNALIST_INTEGRITY_KEY: 'abcd' })).toBe('ANNALIST_INTEGRITY_KEY: decodes to 2 bytes; at least 32 are needed (e.g. `openssl rand -hex 32`)')
    const missingFile = path.join(scratch(), 'absent.key')
    expect(attempt({ ANNALIST_INTEGRITY_KEY_FILE: missingFile })).toBe(`ANNALIST_INTEGRITY_KEY_FILE: cannot read ${missingFile}: ENOENT`)
    const shortFile = path.join(scratch(), 'short.key')
    writeFileSync(shortFile, 'c2hvcnQ=')
    expect(attempt({ ANNALIST_INTEGRITY_KEY_FILE: shortFile })).toMatch(/^ANNALIST_INTEGRITY_KEY_FILE: the key in .*short\.key decodes to 5 bytes/)
    expect(attempt({ ANNALIST_INTEGRITY_KEY: generateIntegrityKey(), ANNALIST_INTEGRITY_KEY_FILE: shortFile })).toMatch(/^ANNALIST_INTEGRITY_KEY: set either it or ANNALIST_INTEGRITY_KEY_FILE, not both/)
    expect(attempt({})).toMatch(/^ANNALIST_INTEGRITY_KEY: not set; .*ANNALIST_INTEGRITY_KEY_FILE/)
    expect(attempt({ ANNALIST_INTEGRITY_KEY: '   ' })).toMatch(/^ANNALIST_INTEGRITY_KEY: not set/)
  })

  it("writes the demo's key file once, with mode 0600, and reads the same key back later", () => {
    const dataDir = path.join(scratch(), 'data')
    const first = demoIntegrityKey(dataDir)
    expect(first).toMatchObject({ path: path.join(dataDir, 'integrity.key'), created: true })
    expect(statSync(first.path).mode & 0o777).toBe(0o600)
    const second = demoIntegrityKey(dataDir)
    expect(second.created).toBe(false)
    expect(second.keyRing.keyFor('acme').equals(first.keyRing.keyFor('acme'))).toBe(true)
    writeFileSync(first.path, 'garbage!')
    expect(() => demoIntegrityKey(dataDir)).toThrow(/integrity key file .*integrity\.key is neither hex nor base64.*; fix or delete it$/)
  })
})
