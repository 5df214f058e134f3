import { createHash } from 'node:crypto'
import { createPatch } from 'diff'
import { REPLAYABLE_STEPS, stepOfEventType, type AnnalistEvent, type ModelRef, type PromptRef, type ReplayableStep } from '../../historian/events'
import type { StoredEvent } from '../../historian/historian'

/** What one step of one pipeline run did (or reused from its parent run). */
export interface StepFacts {
  /** `ran` in this run, `reused` from the parent run (before a linked run's fromStep), or `not run`. */
  readonly source: 'ran' | 'reused' | 'not run'
  readonly status: 'ok' | 'failed' | 'pending'
  readonly model?: string
  readonly prompt?: string
  /** The step's outcome in one line: the route, the planned calls, the tool outcomes, or the answer's SHA-256. */
  readonly outcome?: string
  readonly answer?: string
  readonly tokens: number
  readonly costUsd: number
  /** Attempts that failed and were retried. */
  readonly failedAttempts: number
}

/** One pipeline run of a task: the original run or a replay/redrive, with what each step did. */
export interface RunFacts {
  readonly runId: string
  readonly reason: 'original' | 'replay' | 'redrive'
  readonly parentRunId?: string
  readonly fromStep?: ReplayableStep
  readonly requestedBy: string
  readonly overrides?: string
  readonly status: 'running' | 'completed' | 'failed' | 'cancelled'
  readonly failedStep?: string
  readonly errorCode?: string
  readonly steps: Readonly<Record<ReplayableStep, StepFacts>>
}

const NOT_RUN: StepFacts = { source: 'not run', status: 'pending', tokens: 0, costUsd: 0, failedAttempts: 0 }

const modelText = (model: ModelRef) => `${model.provider}/${model.modelId}@${model.modelVersion}`
const promptText = (prompt: PromptRef) => `${prompt.templateId}@${prompt.templateVersion}`
const sha12 = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12)

/** Folds one step event into the step's facts. */
function applyStep(facts: StepFacts, event: AnnalistEvent): StepFacts {
  const ran = { ...facts, source: 'ran' as const }
  switch (event.type) {
    case 'RoutingModelInvoked':
    case 'PlanCreated':
    case 'PlanIterationCreated':
    case 'SynthesisModelInvoked': {
      const { model, prompt, usage } = event.data
      const outcome =
        event.type === 'RoutingModelInvoked'
          ? `route ${event.data.route}`
          : event.type === 'SynthesisModelInvoked'
            ? `answer sha256 ${sha12(event.data.answer)}`
            : [facts.outcome, ...event.data.toolCalls.map((call) => `${call.toolCallId} ${call.toolName}`)].filter(Boolean).join(', ')
      return {
        ...ran,
        status: 'ok',
        model: modelText(model),
        prompt: promptText(prompt),
        outcome,
        ...(event.type === 'SynthesisModelInvoked' ? { answer: event.data.answer } : {}),
        tokens: facts.tokens + usage.inputTokens + usage.outputTokens,
        costUsd: facts.costUsd + usage.costUsd,
      }
    }
    case 'RoutingModelFailed':
    case 'PlanningModelFailed':
    case 'SynthesisModelFailed':
      return event.data.willRetry
        ? { ...ran, failedAttempts: facts.failedAttempts + 1 }
        : { ...ran, status: 'failed', model: modelText(event.data.model), prompt: promptText(event.data.prompt), outcome: `failed ${event.data.errorCode}` }
    case 'ToolCallExecuted':
    case 'ToolCallFailed': {
      const one = `${event.data.toolCallId} ${event.data.toolName} ${event.type === 'ToolCallExecuted' ? 'ok' : `failed ${event.data.errorCode}`}`
      return { ...ran, status: facts.status === 'failed' || event.type === 'ToolCallFailed' ? 'failed' : 'ok', outcome: [facts.outcome, one].filter(Boolean).join('; ') }
    }
    default:
      return facts
  }
}

function overridesText(overrides: { models: Record<string, string | undefined>; promptVersions: Record<string, string | undefined> }): string | undefined {
  const parts = [
    ...Object.entries(overrides.models).map(([role, model]) => `${role} model ${model}`),
    ...Object.entries(overrides.promptVersions).map(([role, version]) => `${role} prompt ${version}`),
  ]
  return parts.length > 0 ? parts.join(', ') : undefined
}

/**
 * Splits a task's stream into its pipeline runs, oldest first: a run begins at AgentTaskReceived or TaskRunStarted and
 * owns the events up to the next one (continue-as-new keeps the run). A linked run's steps before its fromStep are its
 * parent's, marked `reused`.
 */
export function runsOf(events: readonly StoredEvent[]): RunFacts[] {
  const runs: RunFacts[] = []
  type Mutable = { -readonly [K in keyof RunFacts]: RunFacts[K] } & { steps: Record<ReplayableStep, StepFacts> }
  let current: Mutable | undefined
  for (const { event } of events) {
    if (event.type === 'AgentTaskReceived') {
      current = { runId: event.metadata.runId, reason: 'original', requestedBy: event.data.requestedBy, status: 'running', steps: { route: NOT_RUN, plan: NOT_RUN, tools: NOT_RUN, synthesize: NOT_RUN } }
      runs.push(current)
      continue
    }
    if (event.type === 'TaskRunStarted') {
      const parent = runs.find((run) => run.runId === event.data.parentRunId)
      const from = REPLAYABLE_STEPS.indexOf(event.data.fromStep)
      const steps = Object.fromEntries(
        REPLAYABLE_STEPS.map((step, index) => [step, index < from && parent ? { ...parent.steps[step], source: parent.steps[step].source === 'not run' ? 'not run' : 'reused' } : NOT_RUN]),
      ) as Record<ReplayableStep, StepFacts>
      current = {
        runId: event.metadata.runId,
        reason: event.data.reason,
        parentRunId: event.data.parentRunId,
        fromStep: event.data.fromStep,
        requestedBy: event.data.requestedBy,
        overrides: overridesText(event.data.overrides),
        status: 'running',
        steps,
      }
      runs.push(current)
      continue
    }
    if (!current) continue
    if (event.type === 'AgentTaskCompleted') current.status = 'completed'
    else if (event.type === 'AgentTaskFailed') Object.assign(current, { status: 'failed', failedStep: event.data.failedStep, errorCode: event.data.errorCode })
    else if (event.type === 'AgentTaskCancelled') Object.assign(current, { status: 'cancelled', failedStep: event.data.cancelledStep })
    const step = stepOfEventType(event.type)
    if (step) current.steps[step] = applyStep(current.steps[step], event)
  }
  return runs
}

/** One compared field of one step. */
export interface DiffRow {
  readonly step: ReplayableStep | 'run'
  readonly field: string
  readonly against: string
  readonly run: string
  readonly changed: boolean
}

/** Two runs of a task compared field by field, with a unified diff of their answers when they differ. */
export interface RunDiff {
  readonly run: RunFacts
  readonly against: RunFacts
  readonly rows: readonly DiffRow[]
  readonly changedFields: number
  readonly answerDiff?: string
}

const money = (usd: number) => Number(usd.toFixed(9)).toString()

/** Compares run `run` with run `against`, step by step: source, model, prompt, outcome, tokens, cost, status. */
export function diffRuns(run: RunFacts, against: RunFacts): RunDiff {
  const rows: DiffRow[] = []
  const row = (step: DiffRow['step'], field: string, a: string | undefined, b: string | undefined) =>
    rows.push({ step, field, against: a ?? '', run: b ?? '', changed: field !== 'source' && (a ?? '') !== (b ?? '') })
  for (const step of REPLAYABLE_STEPS) {
    const [a, b] = [against.steps[step], run.steps[step]]
    row(step, 'source', a.source, b.source)
    row(step, 'status', a.status, b.status)
    row(step, 'model', a.model, b.model)
    row(step, 'prompt', a.prompt, b.prompt)
    row(step, 'outcome', a.outcome, b.outcome)
    row(step, 'tokens', String(a.tokens), String(b.tokens))
    row(step, 'cost (USD)', money(a.costUsd), money(b.costUsd))
  }
  const spent = (facts: RunFacts) => REPLAYABLE_STEPS.map((step) => facts.steps[step]).filter((step) => step.source === 'ran')
  row('run', 'reason', against.reason, run.reason)
  row('run', 'status', `${against.status}${against.failedStep ? ` at ${against.failedStep} (${against.errorCode})` : ''}`, `${run.status}${run.failedStep ? ` at ${run.failedStep} (${run.errorCode})` : ''}`)
  row('run', 'tokens spent', String(spent(against).reduce((sum, step) => sum + step.tokens, 0)), String(spent(run).reduce((sum, step) => sum + step.tokens, 0)))
  row('run', 'cost spent (USD)', money(spent(against).reduce((sum, step) => sum + step.costUsd, 0)), money(spent(run).reduce((sum, step) => sum + step.costUsd, 0)))
  const [answerA, answerB] = [against.steps.synthesize.answer, run.steps.synthesize.answer]
  const answerDiff =
    answerA !== undefined && answerB !== undefined && answerA !== answerB
      ? createPatch('answer', `${answerA}\n`, `${answerB}\n`, `run ${against.runId}`, `run ${run.runId}`)
          .split('\n')
          .slice(2)
          .join('\n')
          .trimEnd()
      : undefined
  return { run, against, rows, changedFields: rows.filter((candidate) => candidate.changed).length, ...(answerDiff === undefined ? {} : { answerDiff }) }
}
