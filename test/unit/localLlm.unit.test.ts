import { join } from 'node:path'

import { describe, expect, it } from 'vitest'

import { findLocalLlm, LocalLlmSetupError, LocalLlmUnavailableError, setupLocalLlm } from '../../cli/runtime/localLlm'
import { LocalLlmConnectionError, resolveLocalLlm } from '../../cli/runtime/localLlmServer'
import { scratchDirs } from '../support/scratchDirs'

const scratchDir = scratchDirs('annalist-llm-unit-')

describe('findLocalLlm', () => {
  it('returns undefined for a cache dir without an installation', async () => {
    expect(findLocalLlm({ ANNALIST_CACHE_DIR: await scratchDir() })).toBeUndefined()
  })
})

describe('setupLocalLlm', () => {
  it('fails in one line naming the step and the log when there is no Python to make the venv with', async () => {
    const cacheDir = await scratchDir()
    const setup = setupLocalLlm({ env: { ANNALIST_CACHE_DIR: cacheDir, PATH: join(cacheDir, 'nothing') } })
    await expect(setup).rejects.toThrow(LocalLlmSetupError)
    await expect(setup).rejects.toThrow(
      `python3 -m venv failed (could not run python3: spawn python3 ENOENT (setup needs Python 3 with venv on PATH); full output in ${join(cacheDir, 'local-llm-setup.log')})`,
    )
    expect(findLocalLlm({ ANNALIST_CACHE_DIR: cacheDir })).toBeUndefined()
  })
})

describe('resolveLocalLlm', () => {
  it('says in one line how to get a server when none is installed and setup is not allowed', async () => {
    const cacheDir = await scratchDir()
    const resolving = resolveLocalLlm({ env: { ANNALIST_CACHE_DIR: cacheDir, PATH: '' } })
    await expect(resolving).rejects.toThrow(LocalLlmUnavailableError)
    await expect(resolving).rejects.toThrow(
      'no local inference server: run `npx annalist setup-local-llm` (compiles llama.cpp once, about 20 minutes on 2 cores), ' +
        `or set ANNALIST_LLM_BASE_URL to an OpenAI-compatible server (nothing installed in ${cacheDir})`,
    )
  })

  it('names ANNALIST_LLM_BASE_URL when it is not an http(s) URL', async () => {
    const resolving = resolveLocalLlm({ env: { ANNALIST_LLM_BASE_URL: 'localhost:8080' } })
    await expect(resolving).rejects.toThrow(LocalLlmConnectionError)
    await expect(resolving).rejects.toThrow(
      'cannot use the inference server at ANNALIST_LLM_BASE_URL=localhost:8080: not an http:// or https:// URL (e.g. http://127.0.0.1:8080/v1)',
    )
  })
})
