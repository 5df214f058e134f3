import { buildWorkflowBundle, type WorkflowSources } from './runtime/workflowBundle'

/** Build step (scripts/build.mjs): writes dist/workflow-bundle.js from the workflow sources. */
export function buildPrebuiltWorkflowBundle(): Promise<WorkflowSources> {
  return buildWorkflowBundle()
}
