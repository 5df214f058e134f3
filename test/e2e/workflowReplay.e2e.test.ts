import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from '@temporalio/worker'
import { describe, expect, it } from 'vitest'
import { HISTORY_SCENARIOS } from '../support/histories/scenarios'
import { sharedWorkflowBundle } from '../support/pipelineHarness'

const HISTORIES = fileURLToPath(new URL('../support/histories', import.meta.url))

describe('saved workflow histories replay against the current workflow code', () => {
  it('replays every saved history without a non-determinism error', async () => {
    const files = readdirSync(HISTORIES).filter((file) => file.endsWith('.json'))
    expect(files.sort()).toEqual(HISTORY_SCENARIOS.map((scenario) => `${scenario.name}.json`).sort())
    const histories = files.map((file) => ({ workflowId: file, history: JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8')) as unknown }))
    const results = []
    for await (const result of Worker.runReplayHistories({ workflowBundle: await sharedWorkflowBundle() }, histories)) results.push(result)
    expect(results.map((result) => [result.workflowId, result.error?.message ?? 'ok'])).toEqual(files.map((file) => [file, 'ok']))
  })

  it('would catch a non-deterministic change: a history whose recorded commands differ fails to replay', async () => {
    const file = path.join(HISTORIES, 'completed-with-tools.json')
    expect(existsSync(file)).toBe(true)
    const history = JSON.parse(readFileSync(file, 'utf8')) as { events: { activityTaskScheduledEventAttributes?: { activityId?: string } }[] }
    const scheduled = history.events.find((event) => event.activityTaskScheduledEventAttributes?.activityId === 'route')
    scheduled!.activityTaskScheduledEventAttributes!.activityId = 'route-renamed'
    await expect(Worker.runReplayHistory({ workflowBundle: await sharedWorkflowBundle() }, history)).rejects.toThrow(/[Nn]ondeterminism|[Dd]eterminism/)
  })
})
