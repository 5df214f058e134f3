import { ProjectionRunner } from '../../projections/runner'
import { defaultProjections } from '../../projections/defaultProjections'
import { loadConfig } from '../runtime/config'
import { openStorage } from '../runtime/storage'
import { exitWhenSupervisorDies } from '../runtime/supervisorWatchdog'

/** `annalist projector`: follows the event log and keeps the read models current until SIGINT/SIGTERM, printing live counts. */
export async function projectorCommand(): Promise<void> {
  const config = loadConfig()
  const storage = await openStorage(config)
  const applied = new Map<string, { position: bigint; events: number; deadLettered: number }>()
  let lastPrint = 0
  const runner = new ProjectionRunner({
    store: storage.store,
    pool: storage.database.pool,
    projections: defaultProjections(),
    onProgress: (progress) => {
      const total = applied.get(progress.projection) ?? { position: 0n, events: 0, deadLettered: 0 }
      applied.set(progress.projection, {
        position: progress.position,
        events: total.events + progress.applied,
        deadLettered: total.deadLettered + progress.deadLettered,
      })
      if (Date.now() - lastPrint < 1_000) return
      lastPrint = Date.now()
      const line = [...applied].map(([name, at]) => `${name}@${at.position} (+${at.events}${at.deadLettered ? `, ${at.deadLettered} dead-lettered` : ''})`)
      console.error(`projector ${process.pid}: ${line.join('  ')}`)
    },
  })
  const stop = () => void runner.stop()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  exitWhenSupervisorDies(stop)
  console.error(`projector ${process.pid} following the ${storage.store.kind} event log`)
  try {
    await runner.start()
  } finally {
    await storage.close()
  }
}
