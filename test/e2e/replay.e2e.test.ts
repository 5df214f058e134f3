import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client'
import { describe, expect, it, vi } from 'vitest'
import type { FaultPlan } from '../../dev/faults/faultPlan'
import { startLinkedRun } from '../../cli/runtime/linkedRuns'
import { readModelLedger } from '../../cli/runtime/modelLedger'
import { startPipeline } from '../../cli/runtime/pipelineClient'
import { reconcileTasks } from '../../cli/runtime/reconcileTasks'
import type { RunDiff } from '../../cli/runtime/runDiff'
import { listTasks } from '../../cli/runtime/temporalHistories'
import { verifyRun } from '../../cli/runtime/verifyRun'
import { Checkpoint } from '../../historian/checkpoints/checkpoint'
import type { TaskRunStarted } from '../../historian/events'
import type { StoredEvent } from '../../historian/historian'
import { verifyChain } from '../../historian/integrity/verifyChain'
import { auditTrail } from '../../projections/auditTimeline/query'
import { defaultProjections } from '../../projections/defaultProjections'
import { rebuildAndCompare } from '../../projections/rebuild'
import { ProjectionRunner } from '../../projections/runner'
import { taskSummaries } from '../../projections/taskSummary/query'
import { pipelineWorkflowId, type AgentPipelineInput, type TaskRef } from '../../workflows/api'
import type { agentPipeline } from '../../workflows'
import { uniqueSuffix } from '../support/pipelineHarness'
import { eventsOfType } from '../support/storedEvents'
import { supervisedWorkerSuite } from '../support/supervisedWorkerSuite'

const CALC_INPUT = 'Calculate (1250 * 12) + 380 for the budget'

/**
 * Replay from a signed checkpoint against real parts: a real worker process on the Temporal dev server, the PostgreSQL
 * server or PGlite (served over the wire protocol to the worker and CLI processes), the scripted model with its call
 * ledger, and the real CLI (`replay`, `checkpoint`, `diff`).
 */
describe.each(['postgres server', 'embedded PGlite'] as const)('replay from a checkpoint as a linked run (%s)', (kind) => {
  const tenant = `rp_${uniqueSuffix()}`
  const otherTenant = `rpother_${uniqueSuffix()}`
  const calc: TaskRef = { tenantId: tenant, taskId: 'calc' }
  const crashy: TaskRef = { tenantId: tenant, taskId: 'crashy' }
  const notify: TaskRef = { tenantId: tenant, taskId: 'notify' }
  const foreignCalc: TaskRef = { tenantId: otherTenant, taskId: 'calc' }
  const originalRunIds = new Map<string, string>()

  const suite = supervisedWorkerSuite({ kind, faults: { rules: [] }, scriptedLatencyMs: 20, taskQueuePrefix: 'rp' })
  const { cli, eventsOf } = suite
  const ofType = eventsOfType
  const ledgerOf = (task: TaskRef) => readModelLedger(suite.rig.ledgerPath).filter((call) => call.tenantId === task.tenantId && call.taskId === task.taskId)
  /** The events a run recorded after its TaskRunStarted (the run is named by its Temporal run ID). */
  const eventsOfRun = (events: readonly StoredEvent[], runId: string) => {
    const start = events.findIndex((stored) => stored.event.type === 'TaskRunStarted' && stored.event.metadata.runId === runId)
    expect(start).toBeGreaterThanOrEqual(0)
    return events.slice(start)
  }
  const runOriginal = async (task: TaskRef, input = CALC_INPUT) => {
    const handle = await startPipeline(suite.rig.client, { ...task, input, requestedBy: 'replay-test', tuning: { retryInitialIntervalMs: 100 } }, suite.rig.taskQueue)
    expect(await handle.result()).toMatchObject({ status: 'completed' })
    originalRunIds.set(`${task.tenantId}/${task.taskId}`, handle.firstExecutionRunId)
  }
  const executionsOf = async (task: TaskRef) => {
    const runs: string[] = []
    for await (const info of suite.rig.client.workflow.list({ query: `WorkflowId = '${pipelineWorkflowId(task.tenantId, task.taskId)}'` })) runs.push(info.runId)
    return runs
  }
  const lastStarted = (events: readonly StoredEvent[]) => ofType(events, 'TaskRunStarted').at(-1)!

  it('replays from synthesize: one model call, no tool call, linked by parentRunId, shown in the audit trail', async () => {
    await Promise.all([runOriginal(calc), runOriginal(foreignCalc), runOriginal(crashy), runOriginal(notify, 'Notify the on-call team on slack that the nightly export finished')])
    expect(ledgerOf(calc).map((call) => call.role)).toEqual(['routing', 'planning', 'synthesis'])
    const before = await eventsOf(calc)

    const run = await cli(['replay', '--tenant', tenant, '--task', 'calc', '--from', 'synthesize', '--by', 'alice', '--note', 'check the answer', '--wait'])
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^replay run \S+ of agent-pipeline:\S+ started from step synthesize of run \S+ \(signed checkpoint at revision \d+\)/)
    expect(JSON.parse(run.stdout.slice(run.stdout.indexOf('{')))).toMatchObject({ status: 'completed', toolCalls: 1, toolCallsFailed: 0, route: 'calculation' })

    const events = await eventsOf(calc)
    const started = lastStarted(events)
    const replayRunId = started.event.metadata.runId
    expect(started.event.data).toMatchObject({ reason: 'replay', parentRunId: originalRunIds.get(`${tenant}/calc`), fromStep: 'synthesize', requestedBy: 'alice', note: 'check the answer' })
    expect(started.event.data.checkpoint).toMatchObject({ step: 'synthesize', revision: before.findIndex((stored) => stored.event.type === 'ToolCallExecuted') })
    // The new run recorded only its own synthesis and completion; routing, planning and the tool call were reused.
    expect(eventsOfRun(events, replayRunId).map((stored) => stored.event.type)).toEqual(['TaskRunStarted', 'SynthesisModelInvoked', 'AgentTaskCompleted'])
    expect(events.slice(0, before.length).map((stored) => stored.eventId)).toEqual(before.map((stored) => stored.eventId))
    const replayCalls = ledgerOf(calc).filter((call) => call.runId === replayRunId)
    expect(replayCalls.map((call) => [call.role, call.activityId, call.attempt])).toEqual([['synthesis', 'synthesize', 1]])
    expect(ledgerOf(calc)).toHaveLength(4)
    expect(await verifyChain({ store: suite.store, keyRing: suite.rig.keyRing, tenantId: tenant, taskId: 'calc' })).toMatchObject({ intact: true, eventsChecked: events.length })

    // The lineage reaches the read models: the audit trail names it, and the task summary re-opened and completed again.
    await new ProjectionRunner({ store: suite.store, pool: suite.rig.database.pool, projections: defaultProjections() }).catchUp()
    const trail = await auditTrail(suite.rig.database.pool, { tenantId: tenant, taskId: 'calc' })
    const lineage = trail.find((entry) => entry.eventType === 'TaskRunStarted')!
    expect(lineage.summary).toContain(`replay run started by alice from step synthesize of run ${originalRunIds.get(`${tenant}/calc`)}`)
    expect(lineage.runId).toBe(replayRunId)
    expect(trail.at(-1)).toMatchObject({ eventType: 'AgentTaskCompleted', runId: replayRunId })
    const [summary] = await taskSummaries(suite.rig.database.pool, { tenantId: tenant, taskId: 'calc' })
    expect(summary).toMatchObject({ status: 'completed', currentStep: 'complete', eventsApplied: events.length })
    expect(summary!.finishedAt!.getTime()).toBeGreaterThanOrEqual(new Date(started.event.metadata.occurredAt).getTime())
  }, 120_000)

  it('replays from tools with a signed checkpoint file and a synthesis model and prompt override; diff shows the change', async () => {
    const file = path.join(suite.rig.workDir, 'calc-tools.checkpoint.json')
    const taken = await cli(['checkpoint', '--tenant', tenant, '--task', 'calc', '--step', 'tools', '--out', file])
    expect(taken.code).toBe(0)
    const checkpoint = Checkpoint.parse(JSON.parse(readFileSync(file, 'utf8')))
    const parent = lastStarted(await eventsOf(calc)).event.metadata.runId
    expect(checkpoint).toMatchObject({ version: 1, tenantId: tenant, taskId: 'calc', parentRunId: parent, step: 'tools' })

    const run = await cli([
      'replay', '--tenant', tenant, '--task', 'calc', '--from', 'tools', '--checkpoint', file,
      '--model', 'synthesis=scripted-synthesizer-next', '--prompt-version', 'synthesis=1.1.0', '--by', 'bob', '--wait',
    ])
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    const events = await eventsOf(calc)
    const started = lastStarted(events)
    const runId = started.event.metadata.runId
    expect(started.event.data).toMatchObject({
      parentRunId: parent,
      fromStep: 'tools',
      checkpoint: { signature: checkpoint.signature, revision: checkpoint.revision },
      overrides: { models: { synthesis: 'scripted-synthesizer-next' }, promptVersions: { synthesis: '1.1.0' } },
    })
    const own = eventsOfRun(events, runId)
    expect(own.map((stored) => stored.event.type)).toEqual(['TaskRunStarted', 'ToolCallExecuted', 'SynthesisModelInvoked', 'AgentTaskCompleted'])
    // The tool ran again for real, under a new idempotency key; the model calls were synthesis only, on the overriding model.
    const [firstTool, againTool] = ofType(events, 'ToolCallExecuted')
    expect(againTool!.event.metadata.runId).toBe(runId)
    expect(againTool!.event.data.idempotencyKey).not.toBe(firstTool!.event.data.idempotencyKey)
    expect(ledgerOf(calc).filter((call) => call.runId === runId).map((call) => [call.role, call.modelId])).toEqual([['synthesis', 'scripted-synthesizer-next']])
    const synthesis = ofType(own, 'SynthesisModelInvoked')[0]!.event.data
    expect(synthesis.model.modelId).toBe('scripted-synthesizer-next')
    expect(synthesis.prompt).toMatchObject({ templateId: 'synthesize-answer', templateVersion: '1.1.0' })
    expect(synthesis.answer).toMatch(/\n- \[t1\] calculator: \(1250 \* 12\) \+ 380 = 15380\./)

    const diff = await cli(['diff', '--tenant', tenant, '--task', 'calc', '--format', 'json'])
    expect(diff.code).toBe(0)
    const compared = JSON.parse(diff.stdout) as RunDiff
    expect(compared.run.runId).toBe(runId)
    expect(compared.against.runId).toBe(parent)
    const changed = compared.rows.filter((row) => row.changed).map((row) => `${row.step}.${row.field}`)
    expect(changed).toEqual(expect.arrayContaining(['synthesize.model', 'synthesize.prompt', 'synthesize.outcome', 'synthesize.tokens']))
    expect(changed).not.toContain('route.model')
    expect(compared.rows.find((row) => row.step === 'tools' && row.field === 'source')).toMatchObject({ against: 'reused', run: 'ran' })
    expect(compared.answerDiff).toMatch(/^\+- \[t1\] calculator/m)
    const table = await cli(['diff', '--tenant', tenant, '--task', 'calc'])
    expect(table.code).toBe(0)
    expect(table.stdout).toContain('scripted/scripted-synthesizer-next@scripted-synthesizer-next-2026.11')
    expect(table.stdout).toMatch(/answer diff:/)
    const original = originalRunIds.get(`${tenant}/calc`)!
    const named = await cli(['diff', '--tenant', tenant, '--task', 'calc', '--run', parent, '--against', original, '--format', 'json'])
    expect(named.code).toBe(0)
    // The first replay re-ran synthesis on the same model and prompt: the same answer; it spent only the synthesis tokens.
    expect((JSON.parse(named.stdout) as RunDiff).rows.filter((row) => row.changed).map((row) => `${row.step}.${row.field}`)).toEqual([
      'run.reason',
      'run.tokens spent',
      'run.cost spent (USD)',
    ])
    const unknownRun = await cli(['diff', '--tenant', tenant, '--task', 'calc', '--run', 'no-such-run'])
    expect(unknownRun.code).toBe(1)
    expect(unknownRun.stderr).toMatch(new RegExp(`--run no-such-run is not a run of ${tenant}/calc; its runs are ${original}, ${parent}, ${runId}`))
    const noParent = await cli(['diff', '--tenant', tenant, '--task', 'calc', '--run', original])
    expect(noParent.code).toBe(1)
    expect(noParent.stderr).toMatch(/has no parent run; name one with --against/)

    // A side-effecting tool replayed from `tools` really runs again: a second outbox row, under the new run's key.
    const again = await startLinkedRun({ client: suite.rig.client, historian: suite.historian, keyRing: suite.rig.keyRing, taskQueue: suite.rig.taskQueue }, { ...notify, fromStep: 'tools', reason: 'replay', requestedBy: 'bob' })
    expect(await suite.rig.client.workflow.getHandle<typeof agentPipeline>(again.workflowId, again.runId).result()).toMatchObject({ status: 'completed' })
    const sent = ofType(await eventsOf(notify), 'ToolCallExecuted').filter((stored) => stored.event.data.toolName === 'send_notification')
    expect(sent.map((stored) => stored.event.metadata.runId)).toEqual([originalRunIds.get(`${tenant}/notify`), again.runId])
    const outbox = await suite.rig.database.pool.query<{ idempotency_key: string }>('select idempotency_key from tool_outbox where tenant_id = $1 and task_id = $2 order by id', [tenant, 'notify'])
    expect(outbox.rows.map((row) => row.idempotency_key)).toEqual(sent.map((stored) => stored.event.data.idempotencyKey))
  }, 120_000)

  it('refuses a tampered or foreign-tenant checkpoint in the CLI: one line, exit 1, no workflow started, nothing written', async () => {
    const file = path.join(suite.rig.workDir, 'calc-synthesize.checkpoint.json')
    expect((await cli(['checkpoint', '--tenant', tenant, '--task', 'calc', '--step', 'synthesize', '--out', file])).code).toBe(0)
    const good = Checkpoint.parse(JSON.parse(readFileSync(file, 'utf8')))
    const tampered = path.join(suite.rig.workDir, 'tampered.json')
    writeFileSync(tampered, JSON.stringify({ ...good, revision: good.revision - 1 }))
    const foreign = path.join(suite.rig.workDir, 'foreign.json')
    expect((await cli(['checkpoint', '--tenant', otherTenant, '--task', 'calc', '--step', 'synthesize', '--out', foreign])).code).toBe(0)

    const events = await eventsOf(calc)
    const executions = await executionsOf(calc)
    const ledger = ledgerOf(calc).length
    for (const [checkpoint, problem] of [
      [tampered, /checkpoint refused for \S+ \(tampered\): its signature does not match/],
      [foreign, new RegExp(`checkpoint refused for ${tenant}/calc \\(foreign\\): it was made for task ${otherTenant}/calc`)],
    ] as const) {
      const run = await cli(['replay', '--tenant', tenant, '--task', 'calc', '--from', 'synthesize', '--checkpoint', checkpoint])
      expect(run.code).toBe(1)
      expect(run.stdout).toBe('')
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
      expect(run.stderr).toMatch(problem)
    }
    expect((await eventsOf(calc)).length).toBe(events.length)
    expect(await executionsOf(calc)).toEqual(executions)
    expect(ledgerOf(calc)).toHaveLength(ledger)
  }, 60_000)

  it('beginRun refuses a tampered or foreign checkpoint handed straight to a workflow: CHECKPOINT_INVALID, no event, no model call', async () => {
    const events = await eventsOf(calc)
    const ledger = ledgerOf(calc).length
    const good = JSON.parse(readFileSync(path.join(suite.rig.workDir, 'calc-synthesize.checkpoint.json'), 'utf8')) as Checkpoint
    const foreign = JSON.parse(readFileSync(path.join(suite.rig.workDir, 'foreign.json'), 'utf8')) as Checkpoint
    for (const [checkpoint, problem] of [
      [{ ...good, stateSha256: 'f'.repeat(64) }, /\(tampered\)/],
      [foreign, /\(foreign\)/],
      [{ ...foreign, tenantId: tenant }, /\(tampered\)/],
    ] as const) {
      const input: AgentPipelineInput = {
        ...calc,
        input: '',
        requestedBy: 'mallory',
        run: { reason: 'replay', fromStep: 'synthesize', requestedBy: 'mallory', overrides: { models: {}, promptVersions: {} }, checkpoint },
      }
      const handle = await suite.rig.client.workflow.start<typeof agentPipeline>('agentPipeline', {
        taskQueue: suite.rig.taskQueue,
        workflowId: pipelineWorkflowId(tenant, 'calc'),
        args: [input],
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      })
      const failure = await handle.result().then(
        () => undefined,
        (error: unknown) => error,
      )
      expect(failure).toBeInstanceOf(WorkflowFailedError)
      const cause = (failure as WorkflowFailedError).cause?.cause
      expect(cause).toBeInstanceOf(ApplicationFailure)
      expect((cause as ApplicationFailure).type).toBe('CHECKPOINT_INVALID')
      expect((cause as ApplicationFailure).message).toMatch(problem)
      const history = await handle.fetchHistory()
      expect(history.events!.filter((event) => event.activityTaskScheduledEventAttributes).map((event) => event.activityTaskScheduledEventAttributes!.activityId)).toEqual(['begin-run'])
    }
    expect((await eventsOf(calc)).map((stored) => stored.eventId)).toEqual(events.map((stored) => stored.eventId))
    expect(ledgerOf(calc)).toHaveLength(ledger)
  }, 60_000)

  it('refuses bad input and a replay while the workflow runs, with one line and exit 1, starting nothing', async () => {
    const events = await eventsOf(calc)
    const bad = [
      [['--from', 'answer'], /--from must be one of route, plan, tools, synthesize; got "answer"/],
      [['--from', 'synthesize', '--model', 'synthesis'], /--model must be ROLE=VALUE with ROLE one of routing, planning, synthesis; got "synthesis"/],
      [['--from', 'synthesize', '--model', 'writer=x'], /--model must be ROLE=VALUE/],
      [['--from', 'synthesize', '--prompt-version', 'synthesis=9.9.9'], /the synthesis prompt has no version "9.9.9"; known versions: 1.0.0, 1.1.0/],
    ] as const
    for (const [args, message] of bad) {
      const run = await cli(['replay', '--tenant', tenant, '--task', 'calc', ...args])
      expect(run.code).toBe(1)
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
      expect(run.stderr).toMatch(message)
    }
    const unknown = await cli(['replay', '--tenant', tenant, '--task', 'nothing-here', '--from', 'route'])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/cannot start a new run of \S+\/nothing-here: the task has no run/)
    expect(await executionsOf({ tenantId: tenant, taskId: 'nothing-here' })).toEqual([])

    // A replay parked on a queue no worker polls keeps the workflow running: a second replay is refused.
    const parked = await startLinkedRun({ client: suite.rig.client, historian: suite.historian, keyRing: suite.rig.keyRing, taskQueue: `nobody-${uniqueSuffix()}` }, { ...calc, fromStep: 'synthesize', reason: 'replay', requestedBy: 'carol' })
    try {
      // Visibility is eventually consistent: wait until the list shows the parked run before taking it as the baseline.
      await vi.waitFor(async () => expect(await executionsOf(calc)).toContain(parked.runId), { timeout: 10_000, interval: 100 })
      const executions = await executionsOf(calc)
      const run = await cli(['replay', '--tenant', tenant, '--task', 'calc', '--from', 'synthesize'])
      expect(run.code).toBe(1)
      expect(run.stderr).toMatch(new RegExp(`cannot start a new run of ${tenant}/calc: its workflow agent-pipeline:${tenant}:calc is still running`))
      expect(await executionsOf(calc)).toEqual(executions)
    } finally {
      await suite.rig.client.workflow.getHandle(parked.workflowId, parked.runId).terminate('test: parked replay')
    }
    expect((await eventsOf(calc)).length).toBe(events.length)
  }, 60_000)

  it('survives a SIGKILL of the worker right after the replay recorded its synthesis: no model call repeated, no duplicate event', async () => {
    await suite.rig.worker.stop()
    const faults: FaultPlan = { rules: [{ target: 'synthesis', kind: 'crash_after_append', tenantId: tenant, taskId: crashy.taskId, attempts: [1] }] }
    const crashWorker = suite.rig.addWorker('crash-worker', faults)
    crashWorker.start()
    const replay = await startLinkedRun({ client: suite.rig.client, historian: suite.historian, keyRing: suite.rig.keyRing, taskQueue: suite.rig.taskQueue }, { ...crashy, fromStep: 'synthesize', reason: 'replay', requestedBy: 'sre' })
    const result = await suite.rig.client.workflow.getHandle<typeof agentPipeline>(replay.workflowId, replay.runId).result()
    expect(result).toMatchObject({ status: 'completed' })
    expect(crashWorker.unplannedExits.map((exit) => exit.signal)).toEqual(['SIGKILL'])

    const events = await eventsOf(crashy)
    const own = eventsOfRun(events, replay.runId)
    expect(own.map((stored) => stored.event.type)).toEqual(['TaskRunStarted', 'SynthesisModelInvoked', 'AgentTaskCompleted'])
    expect((own[0]!.event as TaskRunStarted).data.parentRunId).toBe(originalRunIds.get(`${tenant}/crashy`))
    expect(ledgerOf(crashy).filter((call) => call.runId === replay.runId).map((call) => [call.role, call.attempt])).toEqual([['synthesis', 1]])

    // Across every task and run: no lost or duplicate event, no repeated model call, chains intact; Temporal agrees.
    const tasks = [calc, crashy, notify, foreignCalc]
    const verification = await verifyRun({ historian: suite.historian, pool: suite.rig.database.pool, tasks, ledger: readModelLedger(suite.rig.ledgerPath), keyRing: suite.rig.keyRing })
    expect(verification).toMatchObject({ duplicateOutcomes: 0, modelCallsRepeatedAfterCrash: 0, tasksWithoutTerminalEvent: 0, chainsIntact: true, duplicateSideEffects: 0 })
    const reconciled = await reconcileTasks({ client: suite.rig.client, store: suite.store }, await listTasks({ client: suite.rig.client, store: suite.store }, { tenantId: tenant }))
    expect(reconciled.findings).toEqual([])
    expect(reconciled.tasksChecked).toBe(3)
    expect(reconciled.workflowRunsChecked).toBeGreaterThanOrEqual(10)
    // The read models, fed incrementally across every run of these tasks, equal a rebuild from position 0.
    await new ProjectionRunner({ store: suite.store, pool: suite.rig.database.pool, projections: defaultProjections() }).catchUp()
    expect(await rebuildAndCompare(suite.store, suite.rig.database.pool, defaultProjections())).toMatchObject({ matches: true, differences: [] })
  }, 150_000)

  it('refuses to sign a checkpoint or replay from a stream whose PlanCreated tool call was edited by SQL: one line naming the break, nothing written or started', async () => {
    const stream = `tenant_${foreignCalc.tenantId}-${foreignCalc.taskId}`
    const plan = (await eventsOf(foreignCalc)).find((stored) => stored.event.type === 'PlanCreated')!
    await suite.rig.database.pool.query(`update events set data = jsonb_set(data, '{toolCalls,0,parameters}', '{"expression":"6 * 7"}') where event_id = $1`, [plan.eventId])
    const breaks = new RegExp(`^annalist: .*the hash chain of ${stream} breaks at revision ${plan.revision} \\(content_edited, event PlanCreated ${plan.eventId}\\)`)
    const events = (await eventsOf(foreignCalc)).length
    const executions = await executionsOf(foreignCalc)
    const file = path.join(suite.rig.workDir, 'forged.checkpoint.json')
    const runs = [
      await cli(['checkpoint', '--tenant', otherTenant, '--task', 'calc', '--step', 'synthesize', '--out', file]),
      await cli(['replay', '--tenant', otherTenant, '--task', 'calc', '--from', 'synthesize', '--by', 'mallory']),
    ]
    for (const run of runs) {
      expect(run.code, run.stderr).toBe(1)
      expect(run.stdout).toBe('')
      expect(run.stderr.trim().split('\n')).toHaveLength(1)
      expect(run.stderr.trim()).toMatch(breaks)
    }
    expect(existsSync(file)).toBe(false)
    expect((await eventsOf(foreignCalc)).length).toBe(events)
    expect(await executionsOf(foreignCalc)).toEqual(executions)
  }, 60_000)
})
