import { describe, expect, it } from 'vitest'
import { NEVER_DEAD_LETTERED } from '../../activities/taskDeadLetter'
import {
  EVENT_TYPES,
  FailureType,
  failureEventTypesOf,
  isModelFailedEventType,
  isModelInvokedEventType,
  MODEL_EVENTS,
  ModelEvent,
  ModelErrorCode,
  NON_RETRYABLE_FAILURE_TYPES,
  PIPELINE_STEPS,
  PipelineStepName,
  REPLAYABLE_STEPS,
  ReplayableStep,
  stepOfEventType,
  TOOL_CALL_EVENTS,
} from '../../historian/events'

describe('the domain catalogue (historian/events/catalogue.ts)', () => {
  it('names every model event, and only event types that exist', () => {
    const modelEventTypes = ModelEvent.options.map((schema) => schema.shape.type.value)
    expect(Object.keys(MODEL_EVENTS).sort()).toEqual([...modelEventTypes].sort())
    for (const type of [...Object.keys(MODEL_EVENTS), ...Object.keys(TOOL_CALL_EVENTS)]) expect(EVENT_TYPES).toContain(type)
  })

  it('is what the zod step enums accept', () => {
    expect(PipelineStepName.options).toEqual([...PIPELINE_STEPS])
    expect(ReplayableStep.options).toEqual([...REPLAYABLE_STEPS])
    expect(PIPELINE_STEPS.filter((step) => step !== 'receive' && step !== 'complete')).toEqual([...REPLAYABLE_STEPS])
  })

  it('tells each step its events and its failures', () => {
    expect(stepOfEventType('PlanIterationCreated')).toBe('plan')
    expect(stepOfEventType('ToolCallFailed')).toBe('tools')
    expect(stepOfEventType('AgentTaskFailed')).toBeUndefined()
    expect(failureEventTypesOf('route')).toEqual(['RoutingModelFailed'])
    expect(failureEventTypesOf('plan')).toEqual(['PlanningModelFailed'])
    expect(failureEventTypesOf('tools')).toEqual(['ToolCallFailed'])
    expect(failureEventTypesOf('synthesize')).toEqual(['SynthesisModelFailed'])
    expect(failureEventTypesOf('receive')).toEqual([])
    expect(failureEventTypesOf('complete')).toEqual([])
    expect(isModelInvokedEventType('PlanCreated')).toBe(true)
    expect(isModelFailedEventType('PlanCreated')).toBe(false)
    expect(isModelFailedEventType('SynthesisModelFailed')).toBe(true)
    expect(isModelFailedEventType('ToolCallFailed')).toBe(false)
  })

  it('makes every translated domain failure non-retryable, and never dead-letters one', () => {
    for (const type of Object.values(FailureType)) expect(NON_RETRYABLE_FAILURE_TYPES).toContain(type)
    for (const type of NON_RETRYABLE_FAILURE_TYPES) expect(NEVER_DEAD_LETTERED).toContain(type)
    const modelCodes: readonly string[] = ModelErrorCode.options
    expect(NON_RETRYABLE_FAILURE_TYPES.filter((type) => type.startsWith('MODEL_')).every((code) => modelCodes.includes(code))).toBe(true)
  })
})
