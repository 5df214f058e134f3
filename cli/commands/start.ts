import { Client, Connection } from '@temporalio/client'
import { MAX_LOOP_ITERATIONS, MAX_TOOL_CALLS_PER_ITERATION, type LoopOptions } from '../../workflows/api'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import { authorizeCallerOnce } from '../runtime/callerPermission'
import { loadConfig } from '../runtime/config'
import { startPipeline } from '../runtime/pipelineClient'
import { parseWholeNumber } from './lag'

/** Options of `annalist start`. */
export interface StartOptions {
  readonly tenant: string
  readonly task: string
  readonly input: string
  readonly wait?: boolean
  /** Run as a long agent loop of at most this many planner iterations (docs/long-loops.md). */
  readonly loopIterations?: string
  /** Tool calls the loop planner may ask for per iteration (needs --loop-iterations). */
  readonly callsPerIteration?: string
}

/** The longest `--input` a task may be given: AgentTaskReceived's limit. */
const MAX_INPUT = 100_000

/** Checks every option of `start` without touching storage or Temporal: tenant and task IDs, input, loop options. */
export function validateStartOptions(options: StartOptions): { tenantId: string; taskId: string; input: string; loop: LoopOptions | undefined } {
  const tenantId = assertTenantId(options.tenant)
  const taskId = assertTaskId(options.task)
  if (options.input.trim() === '' || options.input.length > MAX_INPUT) throw new RangeError(`--input must be 1 to ${MAX_INPUT} characters and not blank`)
  return { tenantId, taskId, input: options.input, loop: loopOptionsOf(options) }
}

/** The loop options of `start`, validated; undefined when the task is not a loop. */
export function loopOptionsOf(options: Pick<StartOptions, 'loopIterations' | 'callsPerIteration'>): LoopOptions | undefined {
  if (options.loopIterations === undefined) {
    if (options.callsPerIteration !== undefined) throw new RangeError('--calls-per-iteration needs --loop-iterations')
    return undefined
  }
  const maxIterations = parseWholeNumber(options.loopIterations, '--loop-iterations', 1, MAX_LOOP_ITERATIONS)
  if (options.callsPerIteration === undefined) return { maxIterations }
  return { maxIterations, toolCallsPerIteration: parseWholeNumber(options.callsPerIteration, '--calls-per-iteration', 1, MAX_TOOL_CALLS_PER_ITERATION) }
}

/** `annalist start`: starts (or finds) the pipeline of one tenant task on the cluster at TEMPORAL_ADDRESS; needs task.start on the tenant (ANNALIST_API_KEY). */
export async function startCommand(options: StartOptions): Promise<void> {
  // Validated before anything is opened: bad input touches neither storage nor Temporal.
  const { tenantId, taskId, input: text, loop } = validateStartOptions(options)
  const config = loadConfig()
  if (!config.temporalAddress) throw new Error('TEMPORAL_ADDRESS is not set: `start` submits to a running cluster (start one with `temporal server start-dev`)')
  await authorizeCallerOnce(config, 'task.start', tenantId)
  const connection = await Connection.connect({ address: config.temporalAddress })
  try {
    const client = new Client({ connection, namespace: config.temporalNamespace })
    const input = { tenantId, taskId, input: text, requestedBy: 'cli', ...(loop ? { loop } : {}) }
    const handle = await startPipeline(client, input, config.taskQueue)
    console.log(`pipeline ${handle.workflowId} run ${handle.firstExecutionRunId}${loop ? ` (agent loop of at most ${loop.maxIterations} iterations)` : ''}`)
    // result() follows a loop's continue-as-new chain to the run that ends it.
    if (options.wait) console.log(JSON.stringify(await handle.result(), null, 2))
  } finally {
    await connection.close()
  }
}
