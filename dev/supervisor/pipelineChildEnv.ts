import path from 'node:path'
import type { FaultPlan } from '../faults/faultPlan'
import { loadPrebuiltWorkflowBundle } from '../../cli/runtime/workflowBundle'

/** What a supervised worker or projector child of the demo, the fault campaign or a benchmark needs to know. */
export interface PipelineChildSettings {
  readonly databaseUrl: string
  readonly temporalAddress: string
  readonly temporalNamespace: string
  readonly taskQueue: string
  /** Where the scripted model records each call as it starts (readModelLedger). */
  readonly modelLedgerPath: string
  readonly modelLatencyMs: number
  readonly modelTimeoutMs: number
  readonly faults: FaultPlan
  /** The keys: ANNALIST_INTEGRITY_KEY or ANNALIST_INTEGRITY_KEY_FILE, ANNALIST_KEK or ANNALIST_KEK_FILE (set the other of each pair to '' so an inherited one does not clash). */
  readonly integrity: NodeJS.ProcessEnv
}

/** The environment of a pipeline child process: this process's environment plus the run's settings. */
export function pipelineChildEnv(settings: PipelineChildSettings, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base,
    DATABASE_URL: settings.databaseUrl,
    TEMPORAL_ADDRESS: settings.temporalAddress,
    TEMPORAL_NAMESPACE: settings.temporalNamespace,
    ANNALIST_TASK_QUEUE: settings.taskQueue,
    ANNALIST_MODEL_LEDGER: settings.modelLedgerPath,
    ANNALIST_SCRIPTED_LATENCY_MS: String(settings.modelLatencyMs),
    ANNALIST_MODEL_TIMEOUT_MS: String(settings.modelTimeoutMs),
    ANNALIST_FAULTS: JSON.stringify(settings.faults),
    ...settings.integrity,
  }
}

/** The run files every pipeline child shares: the model-call ledger. */
export interface PipelineRunFiles {
  readonly taskQueue: string
  readonly modelLedgerPath: string
}

/**
 * Names the model-call ledger in `runDir`, after checking that the prebuilt workflow bundle the workers will load matches
 * its sources: a stale build then stops the run with one line, instead of every worker child in a restart loop.
 */
export function preparePipelineRun(runDir: string, taskQueue: string): PipelineRunFiles {
  loadPrebuiltWorkflowBundle()
  return { taskQueue, modelLedgerPath: path.join(runDir, 'model-calls.jsonl') }
}
