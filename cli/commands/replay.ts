import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Client, Connection } from '@temporalio/client'
import { MODEL_ROLES, type ModelRole } from '../../activities/models/modelClient'
import { ReplayableStep, type RunOverrides } from '../../historian/events'
import { assertTaskId, assertTenantId } from '../../historian/streams'
import type { agentPipeline } from '../../workflows'
import { authorizeCaller } from '../runtime/callerPermission'
import { loadConfig, requireIntegrityKeyRing } from '../runtime/config'
import { startLinkedRun, validateOverrides } from '../runtime/linkedRuns'
import { openStorage } from '../runtime/storage'

/** Exit code of `replay --wait` when the new run ended failed (1 stays for errors and refusals). */
export const REPLAY_FAILED_EXIT_CODE = 2

/** Parses `--from`/`--step`: one of the replayable steps, or a one-line error naming them. */
export function parseReplayableStep(option: string, value: string): ReplayableStep {
  const parsed = ReplayableStep.safeParse(value)
  if (!parsed.success) throw new RangeError(`${option} must be one of ${ReplayableStep.options.join(', ')}; got ${JSON.stringify(value)}`)
  return parsed.data
}

/** Parses repeated `ROLE=VALUE` options (`--model synthesis=NAME`) into a value per role; a malformed one is a one-line error. */
export function parseRoleAssignments(option: string, values: readonly string[]): Partial<Record<ModelRole, string>> {
  const assigned: Partial<Record<ModelRole, string>> = {}
  for (const text of values) {
    const match = /^([a-z]+)=\s*(\S.*)$/.exec(text.trim())
    const role = match?.[1] as ModelRole | undefined
    if (!match || !role || !MODEL_ROLES.includes(role)) {
      throw new RangeError(`${option} must be ROLE=VALUE with ROLE one of ${MODEL_ROLES.join(', ')}; got ${JSON.stringify(text)}`)
    }
    if (assigned[role] !== undefined) throw new RangeError(`${option} names the ${role} role twice`)
    assigned[role] = match[2]!.trim()
  }
  return assigned
}

/** Reads a checkpoint file as JSON (its contents are checked by the signature verification, not here). */
export function readCheckpointFile(file: string): unknown {
  const resolved = path.resolve(file)
  let text: string
  try {
    text = readFileSync(resolved, 'utf8')
  } catch (error) {
    throw new Error(`cannot read checkpoint file ${resolved}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    throw new Error(`checkpoint file ${resolved} is not JSON: ${(error as Error).message}`)
  }
}

export interface ReplayOptions {
  tenant: string
  task: string
  from: string
  model: string[]
  promptVersion: string[]
  by?: string
  note?: string
  checkpoint?: string
  wait?: boolean
}

/**
 * `annalist replay --tenant T --task K --from STEP [--model ROLE=NAME]... [--prompt-version ROLE=V]... [--by NAME]
 * [--note TEXT] [--checkpoint FILE] [--wait]`: starts a new run of the task from a signed checkpoint of its latest run
 * (docs/replay.md). Everything is checked before anything starts; a refusal is one line and exit 1. With --wait, exits 2
 * when the new run failed.
 */
export async function replayCommand(options: ReplayOptions): Promise<void> {
  const tenantId = assertTenantId(options.tenant)
  const taskId = assertTaskId(options.task)
  const fromStep = parseReplayableStep('--from', options.from)
  const overrides: RunOverrides = validateOverrides({
    models: parseRoleAssignments('--model', options.model),
    promptVersions: parseRoleAssignments('--prompt-version', options.promptVersion),
  })
  if (options.note !== undefined && options.note.length > 2_000) throw new RangeError('--note is longer than 2000 characters')
  const requestedBy = (options.by ?? process.env.USER ?? 'cli').trim()
  if (requestedBy === '') throw new RangeError('--by must name who asks for the replay')
  const checkpoint = options.checkpoint === undefined ? undefined : readCheckpointFile(options.checkpoint)
  const config = loadConfig()
  const keyRing = requireIntegrityKeyRing(config)
  if (!config.temporalAddress) throw new Error('TEMPORAL_ADDRESS is not set: `replay` starts a run on a running cluster (start one with `temporal server start-dev`)')

  const connection = await Connection.connect({ address: config.temporalAddress })
  try {
    const client = new Client({ connection, namespace: config.temporalNamespace })
    const storage = await openStorage(config)
    let started
    try {
      await authorizeCaller(storage.database.pool, config.apiKey, 'task.replay', tenantId)
      started = await startLinkedRun(
        { client, historian: storage.historian, keyRing, taskQueue: config.taskQueue },
        {
          tenantId,
          taskId,
          fromStep,
          reason: 'replay',
          requestedBy,
          overrides,
          ...(options.note === undefined ? {} : { note: options.note }),
          // Checked in full (schema, tenant and task, signature, stream) by startLinkedRun before anything starts.
          ...(checkpoint === undefined ? {} : { checkpoint: checkpoint as never }),
        },
      )
    } finally {
      await storage.close()
    }
    console.log(
      `replay run ${started.runId} of ${started.workflowId} started from step ${fromStep} of run ${started.parentRunId} (signed checkpoint at revision ${started.checkpoint.revision})`,
    )
    if (options.wait) {
      const result = await client.workflow.getHandle<typeof agentPipeline>(started.workflowId, started.runId).result()
      console.log(JSON.stringify(result, null, 2))
      if (result.status !== 'completed') process.exitCode = REPLAY_FAILED_EXIT_CODE
    }
  } finally {
    await connection.close()
  }
}
