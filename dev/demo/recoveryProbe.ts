import type { EventStore } from '../../historian/port'
import { taskStreamName } from '../../historian/streams'
import type { TaskRef } from '../../workflows/api'
import { readModelLedger, type LedgerCall } from '../../cli/runtime/modelLedger'

/** One SIGKILL of a worker in the middle of a model call, and how long the pipeline took to record its next event. */
export interface RecoveryMeasurement {
  readonly call: LedgerCall
  readonly killedPid: number
  readonly killedAt: number
  /** From the kill to the `recordedAt` of the task's next stored event; both clocks are this machine's. */
  readonly recoverySeconds: number
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Waits until the model ledger shows a call of `task` matching `role` start, SIGKILLs the worker making it (`kill`
 * gets the pid from the ledger and returns whether it killed), and measures the time to the task's next stored event.
 * Returns undefined when `cancelled()` turns true first.
 */
export async function killMidModelCall(options: {
  readonly ledgerPath: string
  readonly store: EventStore
  readonly task: TaskRef
  readonly role?: string
  readonly kill: (pid: number) => boolean
  readonly cancelled?: () => boolean
  readonly pollMs?: number
}): Promise<RecoveryMeasurement | undefined> {
  const cancelled = options.cancelled ?? (() => false)
  const stream = taskStreamName(options.task.tenantId, options.task.taskId)
  while (!cancelled()) {
    const call = readModelLedger(options.ledgerPath).find(
      (entry) => entry.tenantId === options.task.tenantId && entry.taskId === options.task.taskId && (options.role === undefined || entry.role === options.role),
    )
    if (call) {
      const killedAt = Date.now()
      if (!options.kill(call.pid)) throw new Error(`worker ${call.pid} making the ${call.role} call of ${options.task.tenantId}/${options.task.taskId} is not running`)
      // Read after the kill: nothing the dead worker had in flight can land later and pass for the recovery.
      const before = (await options.store.readStream(stream)).length
      while (!cancelled()) {
        const events = await options.store.readStream(stream)
        const next = events[before]
        if (next) return { call, killedPid: call.pid, killedAt, recoverySeconds: (next.recordedAt.getTime() - killedAt) / 1_000 }
        await pause(50)
      }
      return undefined
    }
    await pause(options.pollMs ?? 20)
  }
  return undefined
}
