import { NativeConnection } from '@temporalio/worker'
import { loadConfig, requireIntegrityKeyRing } from '../runtime/config'
import { pipelineActivities } from '../runtime/activityDeps'
import { createPipelineWorker } from '../runtime/pipelineWorker'
import { openStorage } from '../runtime/storage'
import { exitWhenSupervisorDies } from '../runtime/supervisorWatchdog'
import { resolveTemporal } from '../runtime/temporalServer'

/** `annalist worker`: serves the pipeline until SIGINT/SIGTERM. Without TEMPORAL_ADDRESS it starts a local dev server. */
export async function workerCommand(): Promise<void> {
  const config = loadConfig()
  requireIntegrityKeyRing(config)
  const storage = await openStorage(config)
  const temporal = await resolveTemporal({ allowBuild: true, onProgress: (message) => console.error(message) })
  const connection = await NativeConnection.connect({ address: temporal.address })
  try {
    const bundlePath = process.env.ANNALIST_WORKFLOW_BUNDLE
    const worker = await createPipelineWorker({
      connection,
      namespace: temporal.namespace,
      taskQueue: config.taskQueue,
      activities: pipelineActivities(config, storage),
      workflowBundle: bundlePath ? { codePath: bundlePath } : undefined,
      identity: `annalist-worker-${process.pid}`,
    })
    exitWhenSupervisorDies(() => worker.shutdown())
    console.error(`worker ${process.pid} serving task queue ${config.taskQueue} on ${temporal.address} (${storage.store.kind} historian)`)
    await worker.run()
  } finally {
    await connection.close()
    await storage.close()
    await temporal.stop()
  }
}
