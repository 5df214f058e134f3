import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { reportFatal } from '../../cli/runtime/reportFatal'

const key = randomBytes(32).toString('base64url')

/** What reportFatal printed, with process.exit stubbed so the test survives it. */
function printed(error: unknown, verbose: boolean): string {
  const lines: string[] = []
  vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(' ')))
  vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never)
  reportFatal(error, verbose)
  return lines.join('\n')
}

describe('reportFatal', () => {
  afterEach(() => vi.restoreAllMocks())

  it('prints no secret, with or without --verbose', () => {
    const error = new Error(`cannot connect to postgres://annalist:hunter2@db/annalist with key ${key}`, { cause: new Error('Bearer tok3n.XYZ') })
    const short = printed(error, false)
    expect(short).toBe('annalist: cannot connect to postgres://annalist:[redacted]@db/annalist with key [redacted]  (run with --verbose for details)')
    const verbose = printed(error, true)
    for (const secret of [key, 'hunter2', 'tok3n.XYZ']) expect(verbose).not.toContain(secret)
    expect(verbose).toContain('caused by: Error: Bearer [redacted]')
  })
})
