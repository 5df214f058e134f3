import { fileURLToPath } from 'node:url'
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker'

/** Absolute path of the workflows entry point the worker bundles. */
export const WORKFLOWS_PATH = fileURLToPath(new URL('../../workflows/index.ts', import.meta.url))

/** Bundles the workflow code once, so several workers (or restarts of one) can skip the bundling step. */
export async function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger })
}

const noop = () => undefined
const printError = (message: string, meta?: unknown) => console.error(message, meta ?? '')
const quietBundlerLogger = { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: printError }
