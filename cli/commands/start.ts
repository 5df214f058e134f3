import { Client, Connection } from '@temporalio/client'
import { loadConfig } from '../runtime/config'
import { startPipeline } from '../runtime/pipelineClient'

/** `annalist start`: starts (or finds) the pipeline of one tenant task on the cluster at TEMPORAL_ADDRESS. */
export async function startCommand(options: { tenant: string; task: string; input: string; wait?: boolean }): Promise<void> {
  const config = loadConfig()
  if (!config.temporalAddress) throw new Error('TEMPORAL_ADDRESS is not set: `start` submits to a running cluster (start one with `temporal server start-dev`)')
  const connection = await Connection.connect({ address: config.temporalAddress })
  try {
    const client = new Client({ connection, namespace: config.temporalNamespace })
    const handle = await startPipeline(client, { tenantId: options.tenant, taskId: options.task, input: options.input, requestedBy: 'cli' }, config.taskQueue)
    console.log(`pipeline ${handle.workflowId} run ${handle.firstExecutionRunId}`)
    if (options.wait) console.log(JSON.stringify(await handle.result(), null, 2))
  } finally {
    await connection.close()
  }
}
