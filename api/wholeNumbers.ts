/** Throws a RangeError naming the first of `values` that is not a whole number of at least 1 (`what` says whose). */
export function requireWholeNumbers<T extends object>(what: string, values: T): T {
  for (const [name, value] of Object.entries(values)) {
    if (!Number.isSafeInteger(value) || (value as number) < 1) throw new RangeError(`${what} ${name} must be a whole number of at least 1, got ${String(value)}`)
  }
  return values
}
