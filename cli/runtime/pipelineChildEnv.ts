import { writeFileSync } from 'node:fs'
import path from 'node:path'
import type { FaultPlan } from '../../activities/faults'
import { bundleWorkflows } from './workflowBundle'

/** What a supervised worker or projector child of the demo, the fault campaign or a benchmark needs to know. */
export interface PipelineChildSettings {
  readonly databaseUrl: string
  readonly temporalAddress: string
  readonly temporalNamespace: string
  readonly taskQueue: string
  /** A pre-built workflow bundle (bundleWorkflows), so restarted workers start in a second. */
  readonly workflowBundlePath: string
  /** Where the scripted model records each call as it starts (readModelLedger). */
  readonly modelLedgerPath: string
  readonly modelLatencyMs: number
  readonly modelTimeoutMs: number
  readonly faults: FaultPlan
  /** ANNALIST_INTEGRITY_KEY or ANNALIST_INTEGRITY_KEY_FILE (set the other to '' so an inherited one does not clash). */
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
    ANNALIST_WORKFLOW_BUNDLE: settings.workflowBundlePath,
    ANNALIST_MODEL_LEDGER: settings.modelLedgerPath,
    ANNALIST_SCRIPTED_LATENCY_MS: String(settings.modelLatencyMs),
    ANNALIST_MODEL_TIMEOUT_MS: String(settings.modelTimeoutMs),
    ANNALIST_FAULTS: JSON.stringify(settings.faults),
    ...settings.integrity,
  }
}

/** The run files every pipeline child shares: the workflow bundle written once into the run's directory, and the model-call ledger. */
export interface PipelineRunFiles {
  readonly taskQueue: string
  readonly workflowBundlePath: string
  readonly modelLedgerPath: string
}

/** Bundles the workflows into `runDir` (so restarted workers skip bundling) and names the model-call ledger beside it. */
export async function preparePipelineRun(runDir: string, taskQueue: string): Promise<PipelineRunFiles> {
  const workflowBundlePath = path.join(runDir, 'workflow-bundle.js')
  writeFileSync(workflowBundlePath, (await bundleWorkflows()).code)
  return { taskQueue, workflowBundlePath, modelLedgerPath: path.join(runDir, 'model-calls.jsonl') }
}
