/** Environment variable through which a supervisor tells its children its pid. */
export const SUPERVISOR_PID_VARIABLE = 'ANNALIST_SUPERVISOR_PID'

/**
 * Ends this process when the supervisor that started it is gone (even if it was SIGKILLed and could not stop its children),
 * so a crashed demo never leaves workers or projectors running. `onOrphaned` should stop gracefully; a second check forces exit.
 * Returns a function that cancels the watch.
 */
export function exitWhenSupervisorDies(onOrphaned: () => void, env: NodeJS.ProcessEnv = process.env, intervalMs = 1_000): () => void {
  const supervisor = Number(env[SUPERVISOR_PID_VARIABLE])
  if (!Number.isInteger(supervisor) || supervisor <= 0) return () => undefined
  let orphaned = false
  const timer = setInterval(() => {
    try {
      process.kill(supervisor, 0)
    } catch {
      if (orphaned) process.exit(1)
      orphaned = true
      console.error(`supervisor ${supervisor} is gone: stopping`)
      onOrphaned()
    }
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}
