/** What a composition root may add to a long-running process (worker, projector) without changing it. */
export interface ProcessHooks {
  /** Called once the process serves, with how to stop it gracefully (the dev supervisor's watchdog uses it). */
  readonly onRunning?: (stop: () => void) => void
}
