import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { runAnnalist } from '../support/runCli'

const DIST = fileURLToPath(new URL('../../dist', import.meta.url))
/** The version of the `node` dev dependency, e.g. v24.21.0. */
const PROJECT_NODE_VERSION = `v${(JSON.parse(readFileSync(new URL('../../node_modules/node/package.json', import.meta.url), 'utf8')) as { version: string }).version}`

/** Imports each file in a plain Node process (not vitest's loader) and returns the ones that fail, with why. */
function importEach(files: readonly string[]): Promise<string> {
  const script = `const failed = []
for (const file of ${JSON.stringify(files)}) { try { await import(file) } catch (error) { failed.push(file + ': ' + error.message.split('\\n')[0]) } }
console.log(JSON.stringify(failed))`
  return new Promise((resolve, reject) =>
    execFile(process.execPath, ['--input-type=module', '-e', script], (error, stdout) => (error ? reject(error) : resolve(stdout))),
  )
}

describe('the built CLI (dist/)', () => {
  it("loads every command's chunk under Node's own ESM loader", async () => {
    const chunks = readdirSync(path.join(DIST, 'chunks')).filter((file) => file.endsWith('.js'))
    expect(chunks.length).toBeGreaterThan(20)
    const failed = JSON.parse(await importEach(chunks.map((file) => path.join(DIST, 'chunks', file)))) as string[]
    expect(failed).toEqual([])
  })

  it('answers --help and --version on the Node it runs on', async () => {
    const help = await runAnnalist(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/Usage: annalist \[options\] \[command\]/)
    const version = await runAnnalist(['--version'])
    expect(version.code).toBe(0)
    expect(version.stdout.trim()).toBe(`annalist 0.1.0 (Node ${process.version})`)
  })
})

describe('bin/annalist.js started by the machine\'s own Node', () => {
  it('runs on Node >= 22.12: itself when the machine has it, else again on the Node 24 that npm ci installed', async () => {
    const pathDirs = (process.env.PATH ?? '').split(path.delimiter).filter((dir) => dir !== '' && !dir.includes('node_modules'))
    const systemNode = pathDirs.map((dir) => path.join(dir, 'node')).find((candidate) => existsSync(candidate))
    expect(systemNode, 'a node on PATH outside node_modules').toBeDefined()
    const run = (args: readonly string[]) =>
      new Promise<string>((resolve, reject) => execFile(systemNode!, args, (error, stdout) => (error ? reject(error) : resolve(stdout.trim()))))
    const systemVersion = await run(['-p', 'process.version'])
    const [major = 0, minor = 0] = systemVersion.slice(1).split('.').map(Number)
    const expected = major > 22 || (major === 22 && minor >= 12) ? systemVersion : PROJECT_NODE_VERSION
    expect(await run([path.join(DIST, '..', 'bin', 'annalist.js'), '--version'])).toBe(`annalist 0.1.0 (Node ${expected})`)
  })
})
