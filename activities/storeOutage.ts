import { Context, heartbeat, log, sleep } from '@temporalio/activity'
import { EventStoreUnavailableError } from '../historian/port'

/** How long one activity attempt waits for an unreachable event store to come back before the attempt fails. */
export const STORE_OUTAGE_WAIT_MS = 60_000

const FIRST_BACKOFF_MS = 250
const MAX_BACKOFF_MS = 4_000
/** Heartbeats while waiting, well inside the shortest heartbeat timeout a pipeline is tuned to. */
const HEARTBEAT_EVERY_MS = 500

function inActivityContext(): boolean {
  try {
    Context.current()
    return true
  } catch {
    return false
  }
}

/** Sleeps `ms` in slices, heartbeating, so Temporal keeps the attempt alive; throws CancelledFailure if it is cancelled. */
async function pauseHeartbeating(ms: number): Promise<void> {
  for (let left = ms; left > 0; left -= HEARTBEAT_EVERY_MS) {
    heartbeat()
    await sleep(Math.min(HEARTBEAT_EVERY_MS, left))
  }
}

/**
 * Runs `work`; while it fails because the event store is unreachable (a database restart, a failover), waits with
 * backoff and runs it again inside the same attempt, heartbeating, for up to `maxWaitMs`. An outage then costs no
 * Temporal attempt: a model step has four, and they are meant for the model's own failures. Running the work again is
 * what a Temporal retry would do, and it is safe for the same reason: recordOnce finds what an earlier run recorded.
 * Outside an activity (a unit test calling the function directly) it does not wait.
 */
export async function waitingOutStoreOutages<R>(work: () => Promise<R>, maxWaitMs = STORE_OUTAGE_WAIT_MS): Promise<R> {
  const deadline = Date.now() + maxWaitMs
  for (let backoffMs = FIRST_BACKOFF_MS; ; backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS)) {
    try {
      return await work()
    } catch (error) {
      if (!(error instanceof EventStoreUnavailableError) || Date.now() + backoffMs > deadline || !inActivityContext()) throw error
      log.warn(`${error.message}; trying again in ${backoffMs} ms within this attempt`)
      await pauseHeartbeating(backoffMs)
    }
  }
}
