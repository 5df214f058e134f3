import { randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig, requireKek } from '../../cli/runtime/config'
import { open, seal, SealBrokenError } from '../../historian/keys/aesGcm'
import { generateKek, KekRing, parseKekText } from '../../historian/keys/keyEncryptionKeys'
import { ExpiringCache } from '../../historian/keys/expiringCache'
import { DEFAULT_KEY_CACHE_TTL_MS } from '../../historian/keys/postgresKeyStore'

const KEY_A = generateKek()
const KEY_B = generateKek()

/** The ConfigError loadConfig throws for `env`, as its one-line message. */
function configRefusal(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return (error as Error).message
  }
  throw new Error('loadConfig accepted the environment')
}

describe('AES-256-GCM wrapping', () => {
  it('round-trips a key, with a fresh random nonce each time', () => {
    const kek = randomBytes(32)
    const key = randomBytes(32)
    const first = seal(kek, key, 'tenant acme')
    const second = seal(kek, key, 'tenant acme')
    expect(first.nonce).toHaveLength(12)
    expect(first.nonce.equals(second.nonce)).toBe(false)
    expect(first.ciphertext.equals(second.ciphertext)).toBe(false)
    expect(open(kek, first, 'tenant acme').equals(key)).toBe(true)
    expect(open(kek, second, 'tenant acme').equals(key)).toBe(true)
  })

  it('refuses a tampered ciphertext, nonce or tag, another context (a row moved to another tenant) and another key', () => {
    const kek = randomBytes(32)
    const sealed = seal(kek, randomBytes(32), 'tenant acme')
    const flipped = (bytes: Buffer, at: number) => Buffer.from(bytes.map((byte, index) => (index === at ? byte ^ 1 : byte)))
    expect(() => open(kek, { ...sealed, ciphertext: flipped(sealed.ciphertext, 0) }, 'tenant acme')).toThrow(SealBrokenError)
    expect(() => open(kek, { ...sealed, ciphertext: flipped(sealed.ciphertext, sealed.ciphertext.length - 1) }, 'tenant acme')).toThrow(SealBrokenError)
    expect(() => open(kek, { ...sealed, nonce: flipped(sealed.nonce, 3) }, 'tenant acme')).toThrow(SealBrokenError)
    expect(() => open(kek, sealed, 'tenant globex')).toThrow(SealBrokenError)
    expect(() => open(randomBytes(32), sealed, 'tenant acme')).toThrow(SealBrokenError)
    expect(() => open(kek, { ...sealed, ciphertext: sealed.ciphertext.subarray(0, 8) }, 'tenant acme')).toThrow(SealBrokenError)
  })
})

describe('the key-encryption keys (ANNALIST_KEK)', () => {
  it('reads one bare hex key as version 1, and version:key entries with the highest version current', () => {
    expect([...parseKekText(KEY_A).keys()]).toEqual([1])
    const ring = KekRing.fromText(`1:${KEY_A}, 3:${KEY_B}`)
    expect(ring.versions).toEqual([1, 3])
    expect(ring.currentVersion).toBe(3)
    expect(ring.key(1)!.toString('hex')).toBe(KEY_A)
    expect(ring.key(2)).toBeUndefined()
  })

  it.each([
    ['too short', 'abc', /the key has 3 hex characters; a key is exactly 64/],
    ['base64', Buffer.from(randomBytes(32)).toString('base64'), /not <version>:<64 hex characters>/],
    ['33 bytes', `${KEY_A}00`, /66 hex characters/],
    ['an entry without a version', `1:${KEY_A},${KEY_B}`, /entry 2 has no version/],
    ['a version twice', `1:${KEY_A},1:${KEY_B}`, /version 1 appears twice/],
    ['version 0', `0:${KEY_A}`, /version 0/],
  ])('refuses %s in one line naming ANNALIST_KEK, without echoing a key', (_name, text, problem) => {
    const message = configRefusal({ ANNALIST_KEK: text })
    expect(message).toMatch(/^ANNALIST_KEK: /)
    expect(message).toMatch(problem)
    expect(message).not.toContain('\n')
    expect(message).not.toContain(KEY_A)
    expect(message).not.toContain(KEY_B)
  })

  it('counts a blank ANNALIST_KEK as unset, like every variable, and a blank key text as empty', () => {
    expect(loadConfig({ ANNALIST_KEK: '  ' }).kek).toBeUndefined()
    expect(() => parseKekText(' ')).toThrow(/^is empty/)
  })

  it('reads ANNALIST_KEK_FILE only when its owner alone may read it, and names that variable when refusing', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'annalist-kek-'))
    const file = path.join(dir, 'kek')
    writeFileSync(file, `2:${KEY_A}\n`, { mode: 0o600 })
    expect(loadConfig({ ANNALIST_KEK_FILE: file }).kek!.currentVersion).toBe(2)
    chmodSync(file, 0o640)
    expect(configRefusal({ ANNALIST_KEK_FILE: file })).toBe(`ANNALIST_KEK_FILE: ${file} has mode 0640; a key file must be readable by its owner only (chmod 600)`)
    chmodSync(file, 0o600)
    writeFileSync(file, 'not a key')
    expect(configRefusal({ ANNALIST_KEK_FILE: file })).toMatch(/^ANNALIST_KEK_FILE: the key in .* is not <version>:<64 hex characters>/)
    expect(configRefusal({ ANNALIST_KEK_FILE: path.join(dir, 'missing') })).toMatch(/^ANNALIST_KEK_FILE: cannot read .*missing: ENOENT$/)
    expect(configRefusal({ ANNALIST_KEK: KEY_A, ANNALIST_KEK_FILE: file })).toBe('ANNALIST_KEK: set either it or ANNALIST_KEK_FILE, not both')
  })

  it('is required in one line naming the variable, and never printed', () => {
    expect(() => requireKek(loadConfig({}))).toThrow(/^ANNALIST_KEK: not set; .*ANNALIST_KEK_FILE/)
    const ring = KekRing.fromText(KEY_A)
    expect(inspect(ring)).toBe('KekRing [redacted]')
    expect(JSON.stringify({ ring })).not.toContain(KEY_A)
  })

  it('keeps unwrapped keys 60 s unless ANNALIST_KEY_CACHE_SECONDS says otherwise (0 to 3600)', () => {
    expect(loadConfig({}).keyCacheTtlMs).toBe(DEFAULT_KEY_CACHE_TTL_MS)
    expect(DEFAULT_KEY_CACHE_TTL_MS).toBe(60_000)
    expect(loadConfig({ ANNALIST_KEY_CACHE_SECONDS: '5' }).keyCacheTtlMs).toBe(5_000)
    expect(configRefusal({ ANNALIST_KEY_CACHE_SECONDS: '7200' })).toMatch(/^ANNALIST_KEY_CACHE_SECONDS: must be at most 3600/)
  })
})

describe('the cache of unwrapped keys', () => {
  it('forgets each entry once its lifetime has passed, without being asked for it, and keeps nothing with a lifetime of 0', () => {
    let now = 0
    const cache = new ExpiringCache<string>(1_000, () => now)
    cache.set('a', 'first')
    now = 500
    cache.set('b', 'second')
    expect(cache.get('a')).toBe('first')
    now = 999
    expect(cache.size).toBe(2)
    now = 1_000
    expect(cache.size).toBe(1)
    expect(cache.get('a')).toBeUndefined()
    cache.set('a', 'again')
    now = 1_500
    expect(cache.get('b')).toBeUndefined()
    expect(cache.get('a')).toBe('again')
    cache.deleteWhere((value) => value === 'again')
    expect(cache.size).toBe(0)
    const none = new ExpiringCache<string>(0, () => now)
    none.set('a', 'first')
    expect(none.get('a')).toBeUndefined()
  })
})
