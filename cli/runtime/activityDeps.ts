import type { LanguageModelV4 } from '@ai-sdk/provider'
import { createActivities } from '../../activities/pipelineActivities'
import { ModelClient, type ModelRole } from '../../activities/models/modelClient'
import { modelsFromConfig } from '../../activities/models/modelsFromConfig'
import type { OutputDialect } from '../../historian/events/common'
import type { Historian } from '../../historian/historian'
import { createDefaultTools, type ToolRegistry } from '../../activities/tools/registry'
import { requireIntegrityKeyRing, type AnnalistConfig } from './config'
import type { Storage } from './storage'

/**
 * Wrappers a composition root may put around what the activities use. The production worker uses none; the dev worker
 * of the demo and the fault campaign, and the tests, inject faults this way (dev/faults/).
 */
export interface ActivityDecorators {
  readonly historian?: (historian: Historian) => Historian
  readonly model?: (model: LanguageModelV4, role: ModelRole) => LanguageModelV4
  readonly tools?: (tools: ToolRegistry) => ToolRegistry
}

/**
 * Builds the pipeline activities of one worker process from its configuration and storage, with the structured-output
 * dialect the start-up probe settled on (resolveOutputDialect). Activities append, so the storage's Historian must hold
 * the integrity key ring: without it this throws ConfigError before any activity runs.
 */
export function pipelineActivities(config: Pick<AnnalistConfig, 'models'>, storage: Storage, dialect: OutputDialect, decorators: ActivityDecorators = {}) {
  requireIntegrityKeyRing({ integrityKeyRing: storage.historian.keyRing })
  const tools = createDefaultTools({ pool: storage.database.pool })
  return createActivities({
    historian: decorators.historian?.(storage.historian) ?? storage.historian,
    models: new ModelClient(modelsFromConfig(config.models, { dialect, ...(decorators.model ? { wrapModel: decorators.model } : {}) })),
    tools: decorators.tools?.(tools) ?? tools,
    clock: () => new Date(),
  })
}
