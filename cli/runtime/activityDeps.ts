import { createActivities } from '../../activities/pipelineActivities'
import { ModelClient } from '../../activities/models/modelClient'
import { modelsFromConfig } from '../../activities/models/modelsFromConfig'
import type { OutputDialect } from '../../historian/events/common'
import { createDefaultTools } from '../../activities/tools/registry'
import { requireIntegrityKeyRing, type AnnalistConfig } from './config'
import type { Storage } from './storage'

/**
 * Builds the pipeline activities of one worker process from its configuration and storage, with the structured-output
 * dialect the start-up probe settled on (resolveOutputDialect). Activities append, so the storage's Historian must hold
 * the integrity key ring: without it this throws ConfigError before any activity runs.
 */
export function pipelineActivities(config: Pick<AnnalistConfig, 'models' | 'faults'>, storage: Storage, dialect: OutputDialect) {
  requireIntegrityKeyRing({ integrityKeyRing: storage.historian.keyRing })
  return createActivities({
    historian: storage.historian,
    models: new ModelClient(modelsFromConfig(config.models, { dialect })),
    tools: createDefaultTools({ pool: storage.database.pool, faults: config.faults }),
    clock: () => new Date(),
    faults: config.faults,
  })
}
