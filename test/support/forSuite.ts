import { afterAll, beforeAll } from 'vitest'

/**
 * Opens something before the enclosing describe block's tests and closes it after them (when it opened). The returned
 * function gives it to the tests, and throws when called before it is open.
 */
export function forSuite<T>(name: string, open: () => Promise<T>, close: (opened: T) => Promise<void>): () => T {
  let opened: T | undefined
  beforeAll(async () => {
    opened = await open()
  })
  afterAll(async () => {
    if (opened !== undefined) await close(opened)
  })
  return () => {
    if (opened === undefined) throw new Error(`${name}: open only while the suite runs`)
    return opened
  }
}
