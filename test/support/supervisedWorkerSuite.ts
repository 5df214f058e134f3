import { PostgresEventStore } from '../../historian/adapters/postgres/postgresEventStore'
import { Historian, type StoredEvent } from '../../historian/historian'
import type { TaskRef } from '../../workflows/api'
import { forSuite } from './forSuite'
import { runAnnalist, type CliRun } from './runCli'
import { supervisedWorker, type SupervisedWorker } from './supervisedWorker'

/** A started supervised worker with a store and a historian on its database, and the CLI pointed at both. */
export interface SupervisedWorkerSuite {
  readonly rig: SupervisedWorker
  readonly store: PostgresEventStore
  readonly historian: Historian
  /** Runs `annalist` against the worker's database, task queue and integrity key, as a global operator. */
  cli(args: readonly string[]): Promise<CliRun>
  /** Every event of a task's stream. */
  eventsOf(task: TaskRef): Promise<readonly StoredEvent[]>
}

/**
 * For the enclosing describe block: before its tests, starts `supervisedWorker(options)`'s worker and opens a store and
 * a historian on its database; after them, closes them all.
 */
export function supervisedWorkerSuite(options: Parameters<typeof supervisedWorker>[0]): SupervisedWorkerSuite {
  const current = forSuite(
    'supervisedWorkerSuite',
    async () => {
      const rig = await supervisedWorker(options)
      const store = new PostgresEventStore(rig.database)
      const historian = new Historian(store, { keyRing: rig.keyRing })
      rig.worker.start()
      return { rig, store, historian }
    },
    async ({ rig, store }) => {
      await store.close()
      await rig.close()
    },
  )
  return {
    get rig() {
      return current().rig
    },
    get store() {
      return current().store
    },
    get historian() {
      return current().historian
    },
    cli: (args) => runAnnalist(args, current().rig.cliEnv),
    eventsOf: async (task) => (await current().historian.readTask(task.tenantId, task.taskId)).events,
  }
}
