/** What every redacted secret is replaced with. */
export const REDACTED = '[redacted]'

/** Query-string and form names that carry credentials; a value under one of these names is never logged. */
export const CREDENTIAL_NAMES: ReadonlySet<string> = new Set([
  'access_token',
  'accesstoken',
  'api_key',
  'apikey',
  'api-key',
  'key',
  'token',
  'auth',
  'authorization',
  'bearer',
  'password',
  'passwd',
  'secret',
])

/** A run of exactly 43 base64url characters: the shape of an Annalist API key (api/keys.ts). */
const KEY_SHAPED = /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g
const KEY_SHAPED_WHOLE = /^[A-Za-z0-9_-]{43}$/
/** `Bearer <token>` and `Basic <credentials>`, as in an Authorization header. */
const AUTH_SCHEME = /\b(Bearer|Basic)(\s+)[^\s"',;]+/gi
/** The password of a URL such as `postgres://user:pass@host`. */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*):[^\s@/?#]*@/gi
/** `name=value` where the name is a credential name, in a query string or a `key=value` message. */
const NAMED_CREDENTIAL = /([?&;\s]|^)(access_token|accesstoken|api_key|apikey|api-key|key|token|password|passwd|secret)=[^&\s#;"']*/gi

/** True when `value` has the shape of an API key. */
export function isKeyShaped(value: string): boolean {
  return KEY_SHAPED_WHOLE.test(value)
}

/** `text` with every key-shaped value, Bearer credential, URL password and named credential replaced by [redacted]. */
export function redactSecrets(text: string): string {
  return text
    .replace(URL_PASSWORD, `$1:${REDACTED}@`)
    .replace(AUTH_SCHEME, `$1$2${REDACTED}`)
    .replace(NAMED_CREDENTIAL, `$1$2=${REDACTED}`)
    .replace(KEY_SHAPED, REDACTED)
}

/** The same for a JSON-like value: strings are redacted, and the value under a credential name is dropped entirely. */
export function redactValue(value: unknown): unknown {
  if (typeof value === 'string') return redactSecrets(value)
  if (Array.isArray(value)) return value.map(redactValue)
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value).map(([name, item]) => [redactSecrets(name), CREDENTIAL_NAMES.has(name.toLowerCase()) ? REDACTED : redactValue(item)]),
    )
  }
  return value
}

/** An error (or anything thrown) as redacted text: its stack when `withStack`, otherwise its message. */
export function redactError(error: unknown, withStack = false): string {
  const text = error instanceof Error ? (withStack ? (error.stack ?? error.message) : error.message) : String(error)
  return redactSecrets(text)
}
