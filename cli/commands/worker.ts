import { NativeConnection } from '@temporalio/worker'
import { resolveOutputDialect } from '../../activities/models/outputProbe'
import { ConfigError, loadConfig, requireIntegrityKeyRing } from '../runtime/config'
import { pipelineActivities, type ActivityDecorators } from '../runtime/activityDeps'
import type { ProcessHooks } from '../runtime/processHooks'
import { createPipelineWorker } from '../runtime/pipelineWorker'
import { openStorage } from '../runtime/storage'
import { resolveTemporal } from '../runtime/temporalServer'
import { loadPrebuiltWorkflowBundle } from '../runtime/workflowBundle'

/**
 * `annalist worker`: serves the pipeline on the cluster at TEMPORAL_ADDRESS until SIGINT/SIGTERM. Only with `--dev` does
 * it start a private dev server instead, which no other process knows about: for trying a worker out on its own.
 */
export async function workerCommand(options: { dev?: boolean }, hooks: ProcessHooks & { readonly decorators?: ActivityDecorators } = {}): Promise<void> {
  const config = loadConfig()
  if (!config.temporalAddress && !options.dev) {
    throw new ConfigError('TEMPORAL_ADDRESS', 'not set: a worker serves a running cluster (TEMPORAL_ADDRESS=host:port); pass --dev to start a private dev server instead')
  }
  if (config.temporalAddress && options.dev) throw new ConfigError('TEMPORAL_ADDRESS', `is set (${config.temporalAddress}), and --dev asks for a private dev server: use one or the other`)
  requireIntegrityKeyRing(config)
  const workflowBundle = loadPrebuiltWorkflowBundle()
  // Before anything else opens: a configured dialect the endpoint does not enforce stops the worker here, in one line.
  const output = await resolveOutputDialect(config.models)
  console.error(output.summary)
  const storage = await openStorage(config)
  const temporal = await resolveTemporal({ allowBuild: true, onProgress: (message) => console.error(message) })
  const connection = await NativeConnection.connect({ address: temporal.address })
  try {
    const worker = await createPipelineWorker({
      connection,
      namespace: temporal.namespace,
      taskQueue: config.taskQueue,
      activities: pipelineActivities(config, storage, output.dialect, hooks.decorators),
      workflowBundle,
      identity: `annalist-worker-${process.pid}`,
    })
    hooks.onRunning?.(() => worker.shutdown())
    console.error(`worker ${process.pid} serving task queue ${config.taskQueue} on ${temporal.address}${temporal.source === 'address' ? '' : ' (private dev server)'} (${storage.store.kind} historian)`)
    await worker.run()
  } finally {
    await connection.close()
    await storage.close()
    await temporal.stop()
  }
}
