/**
 * Runs `fn` over `items` with at most `limit` in flight, keeping results in item order.
 *
 * When a call rejects: without `drain`, the returned promise rejects at once while the other lanes go on taking items
 * (the behaviour of executions begun before the drain-fan-out patch). With `drain`, no lane takes another item, the calls
 * already in flight settle, and then the first rejection is thrown: nothing the fan-out started is still running when
 * its caller goes on, for example to compensate the side effects those calls left.
 */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>, options: { drain?: boolean } = {}): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  let failure: { error: unknown } | undefined
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length && failure === undefined) {
      const index = next++
      try {
        results[index] = await fn(items[index]!)
      } catch (error) {
        if (!options.drain) throw error
        failure ??= { error }
      }
    }
  })
  await Promise.all(lanes)
  if (failure !== undefined) throw failure.error
  return results
}
