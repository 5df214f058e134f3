import { readFileSync } from 'node:fs'
import { historyFromJSON } from '@temporalio/common/lib/proto-utils'
import { describe, expect, it } from 'vitest'
import { activityFactsOf } from '../../cli/runtime/temporalHistories'

const saved = (name: string) => historyFromJSON(JSON.parse(readFileSync(new URL(`../support/histories/${name}.json`, import.meta.url), 'utf8')))

describe('activityFactsOf', () => {
  it('lists every activity a saved history scheduled, in order, with how it ended', () => {
    expect(activityFactsOf(saved('completed-with-tools')).map((fact) => [fact.activityId, fact.activityType, fact.state])).toEqual([
      ['receive', 'receiveTask', 'completed'],
      ['route', 'routeTask', 'completed'],
      ['plan', 'planTask', 'completed'],
      ['tool:t1', 'executeToolCall', 'completed'],
      ['tool:t2', 'executeToolCall', 'completed'],
      ['synthesize', 'synthesizeAnswer', 'completed'],
      ['complete', 'completeTask', 'completed'],
    ])
  })

  it('tells a failed activity from completed ones and keeps the attempt of its last start', () => {
    const facts = activityFactsOf(saved('failed-at-synthesis'))
    expect(facts.map((fact) => [fact.activityId, fact.state])).toEqual([
      ['receive', 'completed'],
      ['route', 'completed'],
      ['plan', 'completed'],
      ['tool:t1', 'completed'],
      ['synthesize', 'failed'],
      ['fail', 'completed'],
    ])
    expect(facts.every((fact) => typeof fact.attempt === 'number' && fact.attempt >= 1)).toBe(true)
  })

  it('keeps an activity that was scheduled but has not ended as scheduled', () => {
    const history = saved('completed-with-tools')
    const cut = history.events!.findIndex((event) => event.activityTaskScheduledEventAttributes?.activityId === 'plan')
    const facts = activityFactsOf({ events: history.events!.slice(0, cut + 1) })
    expect(facts.map((fact) => [fact.activityId, fact.state, fact.attempt])).toEqual([
      ['receive', 'completed', 1],
      ['route', 'completed', 1],
      ['plan', 'scheduled', undefined],
    ])
  })
})
