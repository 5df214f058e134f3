import { NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker'
import { activityInterceptors } from '../../activities/activityInterceptors'
import type { createActivities } from '../../activities/pipelineActivities'
import { loadPrebuiltWorkflowBundle, WORKFLOWS_PATH } from './workflowBundle'

export interface PipelineWorkerOptions {
  readonly connection: NativeConnection
  readonly namespace: string
  readonly taskQueue: string
  readonly activities: ReturnType<typeof createActivities>
  /**
   * The workflow code: a bundle, by default the prebuilt `dist/workflow-bundle.js` (refused if its sources changed), or
   * `bundle-at-start` to bundle the workflow sources while the worker starts (what every worker did before the build step).
   */
  readonly workflowBundle?: WorkflowBundleOption | 'bundle-at-start'
  readonly identity?: string
  readonly maxConcurrentActivities?: number
}

/** Creates a worker that serves the agent pipeline workflow and its activities on one task queue. */
export async function createPipelineWorker(options: PipelineWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    activities: options.activities,
    interceptors: { activity: activityInterceptors },
    ...(options.workflowBundle === 'bundle-at-start'
      ? { workflowsPath: WORKFLOWS_PATH }
      : { workflowBundle: options.workflowBundle ?? loadPrebuiltWorkflowBundle() }),
    ...(options.identity ? { identity: options.identity } : {}),
    maxConcurrentActivityTaskExecutions: options.maxConcurrentActivities ?? 32,
    shutdownGraceTime: '2 seconds',
    // A workflow task waits this long on the sticky queue of the worker that ran the previous one before any worker may
    // take it. The SDK default (10 s) is added to every recovery of a worker that died; a replay on another worker costs less.
    stickyQueueScheduleToStartTimeout: '2 seconds',
  })
}
