import type { JSONSchema7 } from '@ai-sdk/provider'
import { jsonSchema, type Schema } from 'ai'
import { toJSONSchema, type z } from 'zod'

/** A reply read as a value of a schema, or why it could not be (in words that never quote the reply). */
export type StructuredReading<T> = { readonly ok: true; readonly value: T; readonly asSent: boolean } | { readonly ok: false; readonly problem: string }

/** The JSON texts a reply may hold, most literal first: the reply itself, a fenced block, then each balanced `{...}`. */
function candidates(text: string): string[] {
  const trimmed = text.trim()
  const found = [trimmed]
  const fenced = /```[a-zA-Z]*\s*\n?([\s\S]*?)\n?```/.exec(trimmed)
  if (fenced?.[1]) found.push(fenced[1].trim())
  for (let start = trimmed.indexOf('{'); start >= 0; start = trimmed.indexOf('{', start + 1)) {
    const object = balancedObject(trimmed, start)
    if (object !== undefined) found.push(object)
  }
  return [...new Set(found)]
}

/**
 * The balanced JSON object starting at `start`, with raw control characters inside its strings escaped (small models
 * emit literal newlines and tabs inside strings, which JSON forbids); undefined when it never closes.
 */
function balancedObject(text: string, start: number): string | undefined {
  let depth = 0
  let inString = false
  let escaped = false
  let out = ''
  for (let i = start; i < text.length; i++) {
    const char = text[i]!
    if (inString) {
      if (escaped) escaped = false
      else if (char === '\\') escaped = true
      else if (char === '"') inString = false
      else if (char < ' ') {
        out += `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`
        continue
      }
    } else if (char === '"') inString = true
    else if (char === '{') depth++
    else if (char === '}' && --depth === 0) return out + char
    out += char
  }
  return undefined
}

/** The schema's complaints, naming the schema's paths; keys the model made up are counted, never quoted (they are content). */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.code === 'unrecognized_keys' ? `${issue.keys.length} unexpected key(s)` : issue.message}`)
    .join('; ')
}

/**
 * Reads a model reply as a value of `schema`: as sent, else tolerantly (a Markdown code fence, JSON embedded in prose,
 * raw control characters in strings). Whatever the route, the value must pass `schema`; nothing else is ever accepted.
 */
export function readStructuredReply<T>(text: string, schema: z.ZodType<T>): StructuredReading<T> {
  let shapeProblem: string | undefined
  for (const [index, candidate] of candidates(text).entries()) {
    let json: unknown
    try {
      json = JSON.parse(candidate)
    } catch {
      continue
    }
    const parsed = schema.safeParse(json)
    if (parsed.success) return { ok: true, value: parsed.data, asSent: index === 0 }
    shapeProblem ??= describeIssues(parsed.error)
  }
  if (shapeProblem !== undefined) return { ok: false, problem: `the reply does not match the expected shape: ${shapeProblem}` }
  return { ok: false, problem: text.trim() === '' ? 'the reply is empty' : 'the reply holds no valid JSON object' }
}

/**
 * Longest string length bound the schema shown to a model keeps. Grammar-constrained decoders such as llama.cpp's unroll
 * a `maxLength` of N into N nested rules: a 2,000-character bound failed to compile there and took llama-cpp-python's
 * server down with it. Longer bounds are checked when the reply is validated, not while it is generated.
 */
export const MAX_LENGTH_SHOWN_TO_MODELS = 64

/** Longest repetition bound (`{1,64}`) a pattern shown to a model keeps; longer ones become `+` or `*`, for the same reason. */
const MAX_REPETITION_SHOWN_TO_MODELS = 16

/** A pattern whose long repetitions (`{1,64}`) are open-ended (`+`), which decoders compile into one loop. */
function withOpenRepetitions(pattern: string): string {
  return pattern.replace(/\{(\d+),(\d+)\}/g, (bound, low: string, high: string) => (Number(high) <= MAX_REPETITION_SHOWN_TO_MODELS ? bound : Number(low) === 0 ? '*' : '+'))
}

/** A JSON schema without string length bounds above MAX_LENGTH_SHOWN_TO_MODELS, with patterns' long repetitions opened, at any depth. */
function withoutLongBounds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutLongBounds)
  if (node === null || typeof node !== 'object') return node
  const entries = Object.entries(node as Record<string, unknown>)
    .filter(([key, value]) => !(key === 'maxLength' && typeof value === 'number' && value > MAX_LENGTH_SHOWN_TO_MODELS))
    .map(([key, value]) => [key, key === 'pattern' && typeof value === 'string' ? withOpenRepetitions(value) : withoutLongBounds(value)])
  return Object.fromEntries(entries)
}

/**
 * The schema a model is asked to follow (structured output): `schema` as JSON schema, as the model's input, without the
 * long length bounds a constrained decoder cannot compile; the reply is still validated against all of `schema`.
 */
export function modelFacingSchema<T>(schema: z.ZodType<T>): Schema<T> {
  const shown = withoutLongBounds(toJSONSchema(schema, { target: 'draft-7', io: 'input', unrepresentable: 'any' })) as JSONSchema7
  return jsonSchema<T>(shown, {
    validate: (value) => {
      const parsed = schema.safeParse(value)
      return parsed.success ? { success: true, value: parsed.data } : { success: false, error: parsed.error }
    },
  })
}
