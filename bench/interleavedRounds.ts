/**
 * Runs every variant once per round, reversing the order on odd rounds (A B, B A, A B, ...), so drift on a shared
 * machine (a neighbour's load, a checkpoint, a warming cache) hits every variant alike. Returns what `measure` returned
 * for each variant, one entry per round in run order.
 */
export async function interleaveRounds<Name extends string>(
  variants: readonly Name[],
  rounds: number,
  measure: (variant: Name, round: number) => Promise<number>,
): Promise<Record<Name, number[]>> {
  if (variants.length === 0) throw new RangeError('interleaveRounds: no variants to measure')
  if (new Set(variants).size !== variants.length) throw new RangeError(`interleaveRounds: variant names repeat: ${variants.join(', ')}`)
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new RangeError(`interleaveRounds: rounds must be a whole number >= 1, got ${String(rounds)}`)
  const results = Object.fromEntries(variants.map((name) => [name, [] as number[]])) as Record<Name, number[]>
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse()
    for (const variant of order) results[variant].push(await measure(variant, round))
  }
  return results
}

/** The median, robust to the one slow round a shared machine throws in. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values')
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** Runs `operation` and returns how many milliseconds it took. */
export async function timeMs(operation: () => Promise<unknown>): Promise<number> {
  const started = performance.now()
  await operation()
  return performance.now() - started
}
