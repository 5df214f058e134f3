import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const DEPCRUISE = path.join(ROOT, 'node_modules', '.bin', 'depcruise')
const run = promisify(execFile)

/** dependency-cruiser over `paths` with the project's rules (.dependency-cruiser.cjs): exit code and what it printed. */
async function cruise(paths: readonly string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout } = await run(DEPCRUISE, [...paths, '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], { cwd: ROOT })
    return { code: 0, output: stdout }
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string }
    return { code: failed.code ?? 1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` }
  }
}

/** One forbidden import per rule, each in a probe module placed in the layer it breaks out of. */
const PROBES: readonly { rule: string; file: string; source: string }[] = [
  { rule: 'workflows-import-types-only', file: 'workflows/__probe', source: "import { createActivities } from '../activities/pipelineActivities'\nexport const probe = createActivities\n" },
  { rule: 'activities-depend-on-historian', file: 'activities/__probe', source: "import { auditTrail } from '../projections/auditTimeline/query'\nexport const probe = auditTrail\n" },
  { rule: 'historian-is-the-bottom', file: 'historian/__probe', source: "import { loadConfig } from '../cli/runtime/config'\nexport const probe = loadConfig\n" },
  { rule: 'projections-depend-on-historian', file: 'projections/__probe', source: "import { createActivities } from '../activities/pipelineActivities'\nexport const probe = createActivities\n" },
  { rule: 'api-depends-on-projections-and-historian', file: 'api/__probe', source: "import { loadConfig } from '../cli/runtime/config'\nexport const probe = loadConfig\n" },
  { rule: 'production-never-imports-dev', file: 'cli/__probe', source: "import { faultDecorators } from '../dev/faults/faultDecorators'\nexport const probe = faultDecorators\n" },
  { rule: 'nothing-imports-tests-or-benchmarks', file: 'dev/__probe', source: "import { BENCHMARKS } from '../bench/bench'\nexport const probe = BENCHMARKS\n" },
  { rule: 'benchmarks-do-not-import-tests', file: 'bench/__probe', source: "import { runAnnalist } from '../test/support/runCli'\nexport const probe = runAnnalist\n" },
]

describe('the layer rules (dependency-cruiser, .dependency-cruiser.cjs)', () => {
  it('hold for the code as it is', async () => {
    const result = await cruise(['workflows', 'activities', 'historian', 'projections', 'api', 'cli', 'dev', 'bench', 'test'])
    expect(result.output).toContain('no dependency violations found')
    expect(result.code).toBe(0)
  }, 60_000)

  it('fail on a forbidden import of each kind, naming the rule it breaks', async () => {
    const suffix = randomBytes(4).toString('hex')
    const files = PROBES.map((probe) => path.join(ROOT, `${probe.file}_${suffix}.ts`))
    try {
      PROBES.forEach((probe, index) => writeFileSync(files[index]!, probe.source))
      const result = await cruise(files.map((file) => path.relative(ROOT, file)))
      expect(result.code).not.toBe(0)
      for (const probe of PROBES) expect(result.output, probe.rule).toMatch(new RegExp(`error ${probe.rule}: ${probe.file}_${suffix}\\.ts`))
    } finally {
      for (const file of files) rmSync(file, { force: true })
    }
  }, 60_000)

  it('fail on an import cycle', async () => {
    const suffix = randomBytes(4).toString('hex')
    const [a, b] = ['a', 'b'].map((name) => path.join(ROOT, 'historian', `__cycle_${name}_${suffix}.ts`)) as [string, string]
    try {
      writeFileSync(a, `import { b } from './__cycle_b_${suffix}'\nexport const a = () => b\n`)
      writeFileSync(b, `import { a } from './__cycle_a_${suffix}'\nexport const b = () => a\n`)
      const result = await cruise([path.relative(ROOT, a)])
      expect(result.code).not.toBe(0)
      expect(result.output).toMatch(/error no-circular/)
    } finally {
      rmSync(a, { force: true })
      rmSync(b, { force: true })
    }
  }, 60_000)
})
