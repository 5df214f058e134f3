import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadPrebuiltWorkflowBundle, PREBUILT_BUNDLE_PATH, WorkflowBundleStaleError } from '../../cli/runtime/workflowBundle'

/** A copy of the prebuilt bundle with its embedded source header changed by `edit`. */
function editedBundle(edit: (header: { hash: string; files: string[] }) => void): string {
  const code = readFileSync(PREBUILT_BUNDLE_PATH, 'utf8')
  const match = /^\/\*! annalist-workflow-sources (\{.*?\}) \*\//.exec(code)
  if (!match) throw new Error('the prebuilt bundle has no source header')
  const header = JSON.parse(match[1]!) as { hash: string; files: string[] }
  edit(header)
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'annalist-bundle-')), 'workflow-bundle.js')
  writeFileSync(file, code.replace(match[1]!, JSON.stringify(header)))
  return file
}

describe('the prebuilt workflow bundle', () => {
  it('names the workflow sources it was built from and loads while they are unchanged', () => {
    const code = readFileSync(PREBUILT_BUNDLE_PATH, 'utf8')
    expect(code).toMatch(/^\/\*! annalist-workflow-sources \{"hash":"[0-9a-f]{64}","files":\[[^\]]*"workflows\/agentPipeline\.workflow\.ts"/)
    const bundle = loadPrebuiltWorkflowBundle()
    expect(bundle.code.startsWith('/*!')).toBe(false)
    expect(bundle.code).toMatch(/\/\/# sourceMappingURL=data:application\/json[^,]*;base64,[A-Za-z0-9+/=]+\s*$/)
  })

  it('is refused, with what to run, when the sources changed since it was built', () => {
    const stale = editedBundle((header) => (header.hash = '0'.repeat(64)))
    expect(() => loadPrebuiltWorkflowBundle(stale)).toThrow(WorkflowBundleStaleError)
    expect(() => loadPrebuiltWorkflowBundle(stale)).toThrow(/is out of date \(its sources changed\): run `npm run build` to rebuild it$/)
  })

  it('is refused when a source file it was built from is gone', () => {
    const stale = editedBundle((header) => header.files.push('workflows/removedSinceTheBuild.ts'))
    expect(() => loadPrebuiltWorkflowBundle(stale)).toThrow(/out of date \(workflows\/removedSinceTheBuild\.ts is gone\)/)
  })

  it('is refused when missing or not built by the build step', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'annalist-bundle-'))
    expect(() => loadPrebuiltWorkflowBundle(path.join(dir, 'none.js'))).toThrow(/is missing: run `npm run build`/)
    writeFileSync(path.join(dir, 'plain.js'), 'var x = 1')
    expect(() => loadPrebuiltWorkflowBundle(path.join(dir, 'plain.js'))).toThrow(/is not a workflow bundle built by `npm run build`/)
  })
})
