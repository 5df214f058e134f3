import { z } from 'zod'
import { defineTool, ToolName } from './tool'

/** Thrown when a calculator expression cannot be parsed or evaluated (syntax error, division by zero, overflow). */
export class CalculatorError extends Error {
  constructor(
    readonly expression: string,
    readonly problem: string,
  ) {
    super(`cannot evaluate ${JSON.stringify(expression)}: ${problem}`)
    this.name = 'CalculatorError'
  }
}

type Token = { kind: 'number'; value: number; at: number } | { kind: 'op'; value: '+' | '-' | '*' | '/' | '(' | ')'; at: number }

function tokenize(expression: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < expression.length) {
    const char = expression[i] as string
    if (/\s/.test(char)) {
      i += 1
    } else if ('+-*/()'.includes(char)) {
      tokens.push({ kind: 'op', value: char as '+' | '-' | '*' | '/' | '(' | ')', at: i })
      i += 1
    } else if (/[\d.]/.test(char)) {
      const match = /^(?:\d+(?:\.\d*)?|\.\d+)/.exec(expression.slice(i))
      if (!match) throw new CalculatorError(expression, `malformed number at position ${i}`)
      tokens.push({ kind: 'number', value: Number(match[0]), at: i })
      i += match[0].length
    } else {
      throw new CalculatorError(expression, `unexpected character ${JSON.stringify(char)} at position ${i}`)
    }
  }
  return tokens
}

/**
 * Evaluates `+ - * /`, parentheses, unary minus and decimals with a small recursive-descent parser (no `eval`).
 * Grammar: expr = term (('+'|'-') term)*; term = unary (('*'|'/') unary)*; unary = ('-'|'+') unary | primary;
 * primary = number | '(' expr ')'. The result is rounded to 15 significant digits, so 0.1 + 0.2 gives 0.3.
 */
export function evaluateExpression(expression: string): number {
  const tokens = tokenize(expression)
  if (tokens.length === 0) throw new CalculatorError(expression, 'empty expression')
  let pos = 0
  const peek = (): Token | undefined => tokens[pos]
  const isOp = (value: string): boolean => {
    const token = peek()
    return token?.kind === 'op' && token.value === value
  }

  const parseExpr = (): number => {
    let value = parseTerm()
    while (isOp('+') || isOp('-')) {
      const op = (tokens[pos++] as Token).value
      const right = parseTerm()
      value = op === '+' ? value + right : value - right
    }
    return value
  }
  const parseTerm = (): number => {
    let value = parseUnary()
    while (isOp('*') || isOp('/')) {
      const op = (tokens[pos++] as Token).value
      const right = parseUnary()
      if (op === '/' && right === 0) throw new CalculatorError(expression, 'division by zero')
      value = op === '*' ? value * right : value / right
    }
    return value
  }
  const parseUnary = (): number => {
    if (isOp('-')) {
      pos += 1
      return -parseUnary()
    }
    if (isOp('+')) {
      pos += 1
      return parseUnary()
    }
    return parsePrimary()
  }
  const parsePrimary = (): number => {
    const token = peek()
    if (token === undefined) throw new CalculatorError(expression, 'unexpected end of expression')
    if (token.kind === 'number') {
      pos += 1
      return token.value
    }
    if (token.value === '(') {
      pos += 1
      const value = parseExpr()
      if (!isOp(')')) throw new CalculatorError(expression, `missing ")" for "(" at position ${token.at}`)
      pos += 1
      return value
    }
    throw new CalculatorError(expression, `unexpected ${JSON.stringify(token.value)} at position ${token.at}`)
  }

  const value = parseExpr()
  const rest = peek()
  if (rest !== undefined) throw new CalculatorError(expression, `unexpected ${JSON.stringify(rest.kind === 'op' ? rest.value : String(rest.value))} at position ${rest.at}`)
  if (!Number.isFinite(value)) throw new CalculatorError(expression, 'result is not a finite number')
  return Number(value.toPrecision(15))
}

/** Parameters of the calculator tool. */
export const CalculatorParameters = z.strictObject({ expression: z.string().min(1).max(500) })
/** Result of the calculator tool. */
export const CalculatorResult = z.object({ expression: z.string(), value: z.number() })

/** Evaluates an arithmetic expression. */
export const calculatorTool = defineTool({
  name: ToolName.calculator,
  description: 'Evaluates an arithmetic expression with + - * / parentheses and decimals. Parameters: {"expression": string}.',
  parameters: CalculatorParameters,
  result: CalculatorResult,
  sideEffect: false,
  execute: async ({ expression }) => ({ expression, value: evaluateExpression(expression) }),
})
