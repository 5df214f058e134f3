import { spawn } from 'node:child_process'
import path from 'node:path'
import { Client, Connection } from '@temporalio/client'
import { NativeConnection } from '@temporalio/worker'
import { ModelClient } from '../activities/models/modelClient'
import { modelsFromConfig } from '../activities/models/modelsFromConfig'
import { createActivities } from '../activities/pipelineActivities'
import { createDefaultTools } from '../activities/tools/registry'
import { startPipeline } from '../cli/runtime/pipelineClient'
import { createPipelineWorker } from '../cli/runtime/pipelineWorker'
import { loadPrebuiltWorkflowBundle } from '../cli/runtime/workflowBundle'
import type { Database } from '../historian/adapters/postgres/database'
import { InMemoryEventStore } from '../historian/adapters/memoryEventStore'
import { Historian } from '../historian/historian'
import { generateIntegrityKey, TenantKeyRing } from '../historian/integrity/tenantKeyRing'
import { packageRoot } from '../historian/packageRoot'
import { interleaveRounds, median, timeMs } from './interleavedRounds'

const CLI_ENTRY = path.join(packageRoot(), 'bin', 'annalist.js')

/** Two variants' medians and every run, in the order they ran. */
export interface StartupFigures<A extends string, B extends string> {
  readonly ratio: number
  readonly medianMs: Record<A | B, number>
  readonly runsMs: Record<A | B, readonly number[]>
  readonly rounds: number
}

function figures<A extends string, B extends string>(runs: Record<A | B, number[]>, numerator: A, denominator: B, rounds: number): StartupFigures<A, B> {
  const medianMs = { [numerator]: median(runs[numerator]), [denominator]: median(runs[denominator]) } as Record<A | B, number>
  return { ratio: medianMs[numerator] / medianMs[denominator], medianMs, runsMs: runs, rounds }
}

/** Wall time of one child process of this Node, from spawn to exit; a non-zero exit fails the benchmark. */
function timeProcess(args: readonly string[]): Promise<number> {
  return timeMs(
    () =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, args, { stdio: 'ignore' })
        child.on('error', reject)
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`node ${args.join(' ')} exited with ${String(code)}`))))
      }),
  )
}

/** `annalist --help` (bin/annalist.js, as users start it) against a bare `node -e 0`, one of each per interleaved round. */
export async function measureCliStartup(options: {
  rounds: number
  onRound?: (variant: string, round: number, ms: number) => void
}): Promise<StartupFigures<'annalistHelp', 'nodeBare'>> {
  const runs = await interleaveRounds(['annalistHelp', 'nodeBare'] as const, options.rounds, async (variant, round) => {
    const ms = await timeProcess(variant === 'annalistHelp' ? [CLI_ENTRY, '--help'] : ['-e', '0'])
    options.onRound?.(variant, round, ms)
    return ms
  })
  return figures(runs, 'annalistHelp', 'nodeBare', options.rounds)
}

/**
 * The time from creating a pipeline worker until its first workflow task is done, with the prebuilt bundle (read and
 * checked against its sources inside the timing) against bundling the workflow sources at start-up, interleaved. A
 * pipeline waits on a fresh task queue before each start; its first workflow task schedules the first activity, so the
 * clock stops when the worker's first activity is called.
 */
export async function measureWorkerStart(options: {
  temporalAddress: string
  database: Database
  rounds: number
  onRound?: (variant: string, round: number, ms: number) => void
}): Promise<StartupFigures<'prebuiltBundle', 'bundleAtStart'>> {
  const workerConnection = await NativeConnection.connect({ address: options.temporalAddress })
  const clientConnection = await Connection.connect({ address: options.temporalAddress })
  const client = new Client({ connection: clientConnection })
  const runTag = Date.now().toString(36)
  const activities = createActivities({
    historian: new Historian(new InMemoryEventStore(), { keyRing: TenantKeyRing.fromText(generateIntegrityKey()) }),
    models: new ModelClient(modelsFromConfig({ provider: 'scripted' })),
    tools: createDefaultTools({ pool: options.database.pool }),
    clock: () => new Date(),
  })
  const startOnce = async (variant: 'prebuiltBundle' | 'bundleAtStart', round: number): Promise<number> => {
    const taskQueue = `bench-worker-start-${variant}-${round}-${runTag}`
      const handle = await startPipeline(client, { tenantId: 'bench', taskId: `start-${variant}-${round}-${runTag}`, input: 'Calculate 2 + 2', requestedBy: 'bench' }, taskQueue)
      let firstActivity: () => void = () => undefined
      const firstActivityCalled = new Promise<void>((resolve) => (firstActivity = resolve))
      const ms = await timeMs(async () => {
        const worker = await createPipelineWorker({
          connection: workerConnection,
          namespace: 'default',
          taskQueue,
          activities: announcingFirstCall(activities, firstActivity),
          workflowBundle: variant === 'prebuiltBundle' ? loadPrebuiltWorkflowBundle() : 'bundle-at-start',
        })
        await worker.runUntil(firstActivityCalled)
      })
      await handle.terminate('benchmark round done').catch(() => undefined)
      return ms
  }
  try {
    // One untimed start of each first: the process's first worker also pays for the Temporal runtime and the JIT.
    await startOnce('prebuiltBundle', -1)
    await startOnce('bundleAtStart', -1)
    const runs = await interleaveRounds(['prebuiltBundle', 'bundleAtStart'] as const, options.rounds, async (variant, round) => {
      const ms = await startOnce(variant, round)
      options.onRound?.(variant, round, ms)
      return ms
    })
    return figures(runs, 'prebuiltBundle', 'bundleAtStart', options.rounds)
  } finally {
    await clientConnection.close()
    await workerConnection.close()
  }
}

/** The same activities, calling `announce` when any of them is first called. */
function announcingFirstCall<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T, announce: () => void): T {
  return Object.fromEntries(
    Object.entries(activities).map(([name, activity]) => [
      name,
      (...args: never[]) => {
        announce()
        return activity(...args)
      },
    ]),
  ) as T
}
