/** Thrown when a read-model query gets a filter it cannot honour: names the filter and says what was wrong. Nothing is read. */
export class InvalidQueryError extends Error {
  constructor(
    readonly filter: string,
    readonly reason: string,
  ) {
    super(`invalid ${filter}: ${reason}`)
    this.name = 'InvalidQueryError'
  }
}

/** A closed-open time window [from, to) over event occurrence times. */
export interface TimeWindow {
  readonly from: Date
  readonly to: Date
}

/** The widest window any query accepts: about ten years. */
export const MAX_WINDOW_DAYS = 3_660
const DAY_MS = 86_400_000
/** Earliest and latest instants a filter may name; anything outside is a typo, not a query. */
const EARLIEST = Date.UTC(2000, 0, 1)
const LATEST = Date.UTC(2100, 0, 1)

const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-](\d{2}):(\d{2})))?$/

/**
 * The one parser of dates and times given by users (API query strings, CLI flags): an ISO 8601 date (midnight UTC) or a
 * date-time with a zone, whose fields must round-trip, so an impossible date such as 2026-02-31 or a time such as 24:00
 * is refused instead of rolling over. Throws InvalidQueryError naming `parameter` (one line); `requireTime` refuses a
 * bare date.
 */
export function parseIsoInstant(parameter: string, text: string, options: { requireTime?: boolean } = {}): Date {
  const example = options.requireTime ? '2026-02-03T14:22:10Z' : '2026-02-03 or 2026-02-03T14:22:10Z'
  const match = ISO_INSTANT.exec(text)
  if (!match || (options.requireTime && match[4] === undefined)) {
    throw new InvalidQueryError(parameter, `${JSON.stringify(text)} is not an ISO 8601 ${options.requireTime ? 'time' : 'date or time'} with a zone (e.g. ${example})`)
  }
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map((field) => Number(field ?? 0)) as [number, number, number, number, number, number]
  const fields = new Date(Date.UTC(year, month - 1, day, hour, minute, second))
  const roundTrips =
    fields.getUTCFullYear() === year &&
    fields.getUTCMonth() === month - 1 &&
    fields.getUTCDate() === day &&
    fields.getUTCHours() === hour &&
    fields.getUTCMinutes() === minute &&
    fields.getUTCSeconds() === second &&
    (match[9] === undefined || (Number(match[9]) <= 23 && Number(match[10]) <= 59))
  if (!roundTrips) throw new InvalidQueryError(parameter, `${JSON.stringify(text)} is not a valid date or time (no such day, hour, minute or offset)`)
  const at = new Date(match[4] === undefined ? `${text}T00:00:00Z` : text)
  if (Number.isNaN(at.getTime())) throw new InvalidQueryError(parameter, `${JSON.stringify(text)} is not a valid date`)
  return at
}

/** Parses an ISO 8601 date or time with a zone (parseIsoInstant), or takes a Date, for the named filter, within 2000-2100; throws InvalidQueryError. */
export function parseInstant(filter: string, value: string | Date): Date {
  const at = value instanceof Date ? value : parseIsoInstant(filter, value)
  if (Number.isNaN(at.getTime())) throw new InvalidQueryError(filter, 'is not a valid date')
  if (at.getTime() < EARLIEST || at.getTime() >= LATEST) throw new InvalidQueryError(filter, `${at.toISOString()} is outside 2000-01-01 to 2100-01-01`)
  return at
}

/**
 * Resolves optional `from`/`to` filters into a window: `to` defaults to `now`, `from` to `to` minus `defaultDays`.
 * Rejects from >= to and windows wider than MAX_WINDOW_DAYS.
 */
export function timeWindow(filters: { readonly from?: string | Date; readonly to?: string | Date }, now: Date, defaultDays: number): TimeWindow {
  const to = filters.to === undefined ? now : parseInstant('to', filters.to)
  const from = filters.from === undefined ? new Date(to.getTime() - defaultDays * DAY_MS) : parseInstant('from', filters.from)
  if (from.getTime() >= to.getTime()) throw new InvalidQueryError('time range', `from ${from.toISOString()} is not before to ${to.toISOString()}`)
  if (to.getTime() - from.getTime() > MAX_WINDOW_DAYS * DAY_MS) {
    throw new InvalidQueryError('time range', `${Math.round((to.getTime() - from.getTime()) / DAY_MS)} days is wider than the ${MAX_WINDOW_DAYS}-day maximum`)
  }
  return { from, to }
}

/** Checks a page size: a whole number from 1 to `max`; returns `fallback` when absent. */
export function pageLimit(value: number | string | undefined, max: number, fallback: number): number {
  if (value === undefined) return fallback
  const limit = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw new InvalidQueryError('limit', `must be a whole number from 1 to ${max}, got ${JSON.stringify(value)}`)
  return limit
}

/** Checks a free-text filter value (a model version, an event type, ...): 1 to 128 printable characters, no quotes or control characters. */
export function filterValue(filter: string, value: string): string {
  if (!/^[A-Za-z0-9_.:@/+-]{1,128}$/.test(value)) {
    throw new InvalidQueryError(filter, `${JSON.stringify(value.slice(0, 64))} must be 1 to 128 characters of letters, digits and _ . : @ / + -`)
  }
  return value
}
