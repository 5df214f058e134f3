import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { makeCheckpointOfIntactChain } from '../../historian/checkpoints/signCheckpoint'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import { loadConfig, requireIntegrityKeyRing } from '../runtime/config'
import { openStorage } from '../runtime/storage'
import { parseReplayableStep } from './replay'

/**
 * `annalist checkpoint --tenant T --task K --step STEP [--out FILE]`: writes the signed checkpoint of the task's latest
 * run at the boundary before STEP as JSON (stdout, or FILE), for `replay --checkpoint FILE`. A step the run never
 * reached is a one-line error, exit 1.
 */
export async function checkpointCommand(options: { tenant: string; task: string; step: string; out?: string }): Promise<void> {
  const tenantId = assertTenantId(options.tenant)
  const taskId = assertTaskId(options.task)
  const step = parseReplayableStep('--step', options.step)
  const config = loadConfig()
  const keyRing = requireIntegrityKeyRing(config)
  const storage = await openStorage(config)
  let text: string
  try {
    const stream = await storage.historian.readTask(tenantId, taskId)
    if (stream.events.length === 0) throw new Error(`task ${tenantId}/${taskId} has no events: nothing to take a checkpoint of`)
    const checkpoint = await makeCheckpointOfIntactChain({ store: storage.historian.store, keyRing }, { tenantId, taskId }, stream.events, step)
    text = `${JSON.stringify(checkpoint, null, 2)}\n`
  } finally {
    await storage.close()
  }
  if (options.out === undefined) process.stdout.write(text)
  else {
    const file = path.resolve(options.out)
    writeFileSync(file, text)
    console.error(`checkpoint of ${tenantId}/${taskId} before ${step} written to ${file}`)
  }
}
