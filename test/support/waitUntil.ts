import { vi } from 'vitest'

/**
 * The one way tests wait for something another process or a background loop does: polls `probe` every `intervalMs`
 * until it returns a truthy value, and returns that value (vi.waitUntil). When the time runs out it fails with
 * "waiting for <what> (up to N ms): Timed out in waitUntil!"; when the probe throws, it fails at once with that error,
 * prefixed the same way. A probe that may throw while the thing is not there yet catches that itself. `detail` adds
 * what only the caller knows (a child's output, say) to the failure.
 */
export async function waitUntil<T>(
  what: string,
  probe: () => T | Promise<T>,
  options: { readonly timeoutMs?: number; readonly intervalMs?: number; readonly detail?: () => string } = {},
) {
  const { timeoutMs = 10_000, intervalMs = 20, detail } = options
  try {
    return await vi.waitUntil(probe, { timeout: timeoutMs, interval: intervalMs, message: `waiting for ${what} (up to ${timeoutMs} ms)` })
  } catch (error) {
    if (detail !== undefined && error instanceof Error) error.message += `\n${detail()}`
    throw error
  }
}
