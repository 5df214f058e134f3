import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ModelClient } from '../../activities/models/modelClient'
import { modelsFromConfig } from '../../activities/models/modelsFromConfig'
import { promptTemplateFor, promptVersionsOf, UnknownPromptVersionError } from '../../activities/models/prompts'
import { synthesisStep } from '../../activities/pipelineModelSteps'
import { parseReplayableStep, parseRoleAssignments } from '../../cli/commands/replay'
import { validateOverrides } from '../../cli/runtime/linkedRuns'
import { diffRuns, runsOf } from '../../cli/runtime/runDiff'
import { CURRENT_SCHEMA_VERSION, type AnnalistEvent } from '../../historian/events'
import type { PendingEvent, StoredEvent } from '../../historian/historian'
import { foldTask } from '../../historian/taskState'
import { TaskEventFactory } from '../../dev/fixtures/eventFactory'

const dirs: string[] = []
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

describe('model and prompt overrides of a replay', () => {
  it('looks prompt templates up by role and version, default first, and names the known versions of an unknown one', () => {
    expect(promptVersionsOf('synthesis')).toEqual(['1.0.0', '1.1.0'])
    expect(promptTemplateFor('synthesis', undefined).templateVersion).toBe('1.0.0')
    expect(promptTemplateFor('synthesis', '1.1.0').templateVersion).toBe('1.1.0')
    expect(() => promptTemplateFor('routing', '1.1.0')).toThrow(UnknownPromptVersionError)
    expect(() => validateOverrides({ models: {}, promptVersions: { synthesis: '2.0.0' } })).toThrow('the synthesis prompt has no version "2.0.0"; known versions: 1.0.0, 1.1.0')
    expect(validateOverrides(undefined)).toEqual({ models: {}, promptVersions: {} })
  })

  it('renders synthesis from the version the run overrides, and records that version', () => {
    const f = new TaskEventFactory('acme', 'task-1')
    const state = foldTask([f.received(), f.routingInvoked(), f.planCreated(['search']), f.toolExecuted('call-1')].map((pending) => pending.event))
    const plain = synthesisStep.render(state)
    const overridden = synthesisStep.render({ ...state, overrides: { models: {}, promptVersions: { synthesis: '1.1.0' } } })
    expect(plain.promptRef.templateVersion).toBe('1.0.0')
    expect(overridden.promptRef).toMatchObject({ templateId: 'synthesize-answer', templateVersion: '1.1.0' })
    expect(overridden.prompt).toContain('Answer style: "bullets"')
    expect(overridden.promptRef.sha256).not.toBe(plain.promptRef.sha256)
  })

  it('lets the scripted model answer under any model name, recorded as its modelId and in the ledger with the run ID', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'annalist-override-'))
    dirs.push(dir)
    const ledgerPath = join(dir, 'calls.jsonl')
    const client = new ModelClient(modelsFromConfig({ provider: 'scripted', ledgerPath }))
    const prompt = promptTemplateFor('synthesis', undefined).render({ input: 'hi', route: 'general', toolResults: [] })
    const ctx = { tenantId: 'acme', taskId: 'task-1', activityId: 'synthesize', attempt: 1, runId: 'run-2' }
    const configured = await client.call('synthesis', prompt, ctx)
    const overridden = await client.call('synthesis', prompt, ctx, { modelId: 'my-new-writer' })
    expect(configured.modelRef.modelId).toBe('scripted-synthesizer')
    expect(overridden.modelRef).toEqual({ provider: 'scripted', modelId: 'my-new-writer', modelVersion: 'my-new-writer-2026.11' })
    expect(overridden.text).toBe(configured.text)
    expect(client.modelRef('synthesis', 'my-new-writer').modelId).toBe('my-new-writer')
    const lines = readFileSync(ledgerPath, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(lines.map((line) => [line.modelId, line.runId])).toEqual([
      ['scripted-synthesizer', 'run-2'],
      ['my-new-writer', 'run-2'],
    ])
  })
})

describe('replay CLI parsing', () => {
  it('parses steps and ROLE=VALUE options, refusing malformed ones with one clear message', () => {
    expect(parseReplayableStep('--from', 'tools')).toBe('tools')
    expect(() => parseReplayableStep('--from', 'receive')).toThrow('--from must be one of route, plan, tools, synthesize; got "receive"')
    expect(parseRoleAssignments('--model', ['synthesis=gpt-4.1', 'routing= small '])).toEqual({ synthesis: 'gpt-4.1', routing: 'small' })
    expect(() => parseRoleAssignments('--model', ['synthesis'])).toThrow('--model must be ROLE=VALUE with ROLE one of routing, planning, synthesis; got "synthesis"')
    expect(() => parseRoleAssignments('--model', ['writer=x'])).toThrow(/ROLE one of/)
    expect(() => parseRoleAssignments('--model', ['synthesis='])).toThrow(/ROLE=VALUE/)
    expect(() => parseRoleAssignments('--prompt-version', ['synthesis=1.1.0', 'synthesis=1.0.0'])).toThrow('--prompt-version names the synthesis role twice')
  })
})

function stored(pending: readonly PendingEvent[]): StoredEvent[] {
  return pending.map(({ eventId, event }, index) => ({ eventId, streamName: 's', revision: BigInt(index), position: BigInt(index + 1), tenantSequence: null, recordedAt: new Date(), event }))
}

describe('runsOf and diffRuns', () => {
  it('splits a stream into runs, marks what a replay reused, and compares two runs field by field', () => {
    const f = new TaskEventFactory('acme', 'task-1')
    const original = [f.received(), f.routingInvoked(), f.planCreated(['search']), f.toolExecuted('call-1'), f.synthesisInvoked('Old answer.')]
    const started: AnnalistEvent = {
      type: 'TaskRunStarted',
      data: {
        reason: 'replay',
        parentRunId: 'run-1',
        fromStep: 'synthesize',
        requestedBy: 'alice',
        checkpoint: { parentRunId: 'run-1', step: 'synthesize', revision: 3, stateSha256: 'a'.repeat(64), signature: 'b'.repeat(64) },
        overrides: { models: { synthesis: 'writer-2' }, promptVersions: {} },
      },
      metadata: { ...original[0]!.event.metadata, runId: 'run-2', activityId: 'begin-run', schemaVersion: CURRENT_SCHEMA_VERSION.TaskRunStarted },
    }
    const synthesized = f.synthesisInvoked('New answer.')
    const replayed: PendingEvent = { ...synthesized, event: { ...synthesized.event, metadata: { ...synthesized.event.metadata, runId: 'run-2' } } as AnnalistEvent }
    const runs = runsOf(stored([...original, f.completed({ totalTokens: 1, totalCostUsd: 0, toolCallsSucceeded: 1, toolCallsFailed: 0 }), { eventId: 'x', event: started }, replayed]))
    expect(runs.map((run) => [run.runId, run.reason, run.parentRunId, run.status])).toEqual([
      ['run-1', 'original', undefined, 'completed'],
      ['run-2', 'replay', 'run-1', 'running'],
    ])
    expect(runs[1]!.steps.route.source).toBe('reused')
    expect(runs[1]!.steps.synthesize).toMatchObject({ source: 'ran', answer: 'New answer.' })
    expect(runs[1]!.overrides).toBe('synthesis model writer-2')

    const diff = diffRuns(runs[1]!, runs[0]!)
    expect(diff.rows.filter((row) => row.changed).map((row) => `${row.step}.${row.field}`)).toEqual(['synthesize.outcome', 'run.reason', 'run.status', 'run.tokens spent', 'run.cost spent (USD)'])
    expect(diff.answerDiff).toContain('-Old answer.\n+New answer.')
  })
})
