import { createActivities } from '../../activities/pipelineActivities'
import { ModelClient } from '../../activities/models/modelClient'
import { modelsFromConfig } from '../../activities/models/modelsFromConfig'
import { createDefaultTools } from '../../activities/tools/registry'
import type { AnnalistConfig } from './config'
import type { Storage } from './storage'

/** Builds the pipeline activities of one worker process from its configuration and storage. */
export function pipelineActivities(config: Pick<AnnalistConfig, 'models' | 'faults'>, storage: Storage) {
  return createActivities({
    historian: storage.historian,
    models: new ModelClient(modelsFromConfig(config.models)),
    tools: createDefaultTools({ pool: storage.database.pool, faults: config.faults }),
    clock: () => new Date(),
    faults: config.faults,
  })
}
