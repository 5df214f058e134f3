import { z } from 'zod'
import { describe, expect, it } from 'vitest'
import { MAX_LENGTH_SHOWN_TO_MODELS, modelFacingSchema, readStructuredReply } from '../../activities/models/structuredReply'

const Route = z.object({ route: z.enum(['research', 'general']) })

describe('readStructuredReply: tolerant reading that never accepts an invalid value', () => {
  it('reads JSON as sent, and says so', () => {
    expect(readStructuredReply('{"route":"research"}', Route)).toEqual({ ok: true, value: { route: 'research' }, asSent: true })
  })

  it('finds the value in a code fence, in surrounding prose, or with raw control characters in its strings', () => {
    const Note = z.object({ note: z.string() })
    expect(readStructuredReply('```json\n{"route":"general"}\n```', Route)).toMatchObject({ ok: true, value: { route: 'general' }, asSent: false })
    expect(readStructuredReply('Sure! Here it is: {"route": "research"} Hope that helps.', Route)).toMatchObject({ ok: true, value: { route: 'research' } })
    expect(readStructuredReply('{"note": "line one\nline two\ttabbed"}', Note)).toMatchObject({ ok: true, value: { note: 'line one\nline two\ttabbed' } })
  })

  it('takes the first candidate that passes the schema, skipping JSON that does not', () => {
    expect(readStructuredReply('{"route":"shopping"} or rather {"route":"general"}', Route)).toMatchObject({ ok: true, value: { route: 'general' } })
  })

  it('refuses what fails the schema anywhere in the reply, naming the field without quoting the reply', () => {
    const reading = readStructuredReply('I think {"route":"shopping"} is best', Route)
    expect(reading.ok).toBe(false)
    if (reading.ok) return
    expect(reading.problem).toMatch(/^the reply does not match the expected shape: route: /)
    expect(reading.problem).not.toContain('shopping')
    expect(readStructuredReply('The route is research.', Route)).toEqual({ ok: false, problem: 'the reply holds no valid JSON object' })
    expect(readStructuredReply('{"route": "resea', Route)).toEqual({ ok: false, problem: 'the reply holds no valid JSON object' })
    expect(readStructuredReply('  ', Route)).toEqual({ ok: false, problem: 'the reply is empty' })
  })
})

describe('modelFacingSchema: what a constrained decoder is asked to follow', () => {
  const Params = z.strictObject({ id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), message: z.string().min(1).max(2000), code: z.string().max(8), tag: z.string().regex(/^t[0-9]{1,3}$/) })

  it('drops long length bounds and opens long repetitions, keeping short ones', async () => {
    const shown = (await modelFacingSchema(Params).jsonSchema) as { properties: Record<string, Record<string, unknown>> }
    expect(shown.properties.message).toMatchObject({ type: 'string', minLength: 1 })
    expect(shown.properties.message).not.toHaveProperty('maxLength')
    expect(shown.properties.code).toMatchObject({ maxLength: 8 })
    expect(shown.properties.id!.pattern).toBe('^[A-Za-z0-9_-]+$')
    expect(shown.properties.tag!.pattern).toBe('^t[0-9]{1,3}$')
    expect(MAX_LENGTH_SHOWN_TO_MODELS).toBeLessThan(2000)
  })

  it('still validates against every bound of the original schema', async () => {
    const schema = modelFacingSchema(Params)
    const good = { id: 'a1', message: 'hi', code: 'x', tag: 't1' }
    expect(await schema.validate!(good)).toEqual({ success: true, value: good })
    expect((await schema.validate!({ ...good, message: 'x'.repeat(2001) })).success).toBe(false)
    expect((await schema.validate!({ ...good, id: 'x'.repeat(65) })).success).toBe(false)
  })
})

describe('problems never carry what the model wrote', () => {
  it('counts keys the schema does not know instead of naming them', () => {
    const reading = readStructuredReply('{"route":"general","ssn_123_45_6789":1}', z.strictObject({ route: z.enum(['research', 'general']) }))
    expect(reading).toEqual({ ok: false, problem: 'the reply does not match the expected shape: (root): 1 unexpected key(s)' })
  })
})
