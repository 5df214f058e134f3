import { copyFile, link, mkdir, readdir, readFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'

import { describe, expect, it } from 'vitest'

import { isProcessAlive } from '../../cli/runtime/fileLock'
import { annalistCacheDir } from '../../cli/runtime/temporalBinary'
import { findLocalLlm, localLlmPaths, setupLocalLlm } from '../../cli/runtime/localLlm'
import { LocalLlmConnectionError, LocalLlmServerError, resolveLocalLlm, startLocalLlmServer } from '../../cli/runtime/localLlmServer'
import { mayRunWithoutRealModel, requireRealModelServer } from '../support/realModelServer'
import { scratchDirs } from '../support/scratchDirs'

const scratchDir = scratchDirs('annalist-llm-test-')

/** A loopback port that was just free and that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

interface ChatCompletion {
  readonly choices: ReadonlyArray<{ readonly message: { readonly content: string } }>
  readonly usage: { readonly prompt_tokens: number; readonly completion_tokens: number }
}

describe.skipIf(mayRunWithoutRealModel())('the real model server of this run', () => {
  it('lists its model on /v1/models', async () => {
    const { baseURL, modelId } = requireRealModelServer()
    const response = await fetch(`${baseURL}/models`)
    expect(response.status).toBe(200)
    const body = (await response.json()) as { data: Array<{ id: string }> }
    expect(body.data.map((model) => model.id)).toContain(modelId)
  })

  it('answers a chat completion with JSON that follows the requested schema, and counts the prompt tokens', async () => {
    const { baseURL, modelId } = requireRealModelServer()
    const response = await fetch(`${baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: modelId,
        messages: [{ role: 'user', content: 'Pick a colour for a traffic light that means go. Answer in JSON.' }],
        response_format: {
          type: 'json_object',
          schema: { type: 'object', properties: { color: { type: 'string', enum: ['red', 'green'] } }, required: ['color'] },
        },
        max_tokens: 32,
        temperature: 0,
      }),
    })
    expect(response.status).toBe(200)
    const completion = (await response.json()) as ChatCompletion
    const answer = JSON.parse(completion.choices[0]!.message.content) as { color: unknown }
    expect(['red', 'green']).toContain(answer.color)
    expect(completion.usage.prompt_tokens).toBeGreaterThan(0)
  })

  it('is what resolveLocalLlm returns for ANNALIST_LLM_BASE_URL, with the listed model unless ANNALIST_LLM_MODEL names one', async () => {
    const { baseURL, modelId } = requireRealModelServer()
    const endpoint = await resolveLocalLlm({ env: { ANNALIST_LLM_BASE_URL: `${baseURL}/` } })
    expect(endpoint).toMatchObject({ baseURL, modelId, source: 'url' })
    await endpoint.stop()
    expect((await fetch(`${baseURL}/models`)).status).toBe(200)
    const named = await resolveLocalLlm({ env: { ANNALIST_LLM_BASE_URL: baseURL, ANNALIST_LLM_MODEL: 'another-model' } })
    expect(named.modelId).toBe('another-model')
  })
})

/** CI (ANNALIST_TEST_LLM=required without ANNALIST_LLM_BASE_URL) runs on the installation `setup-local-llm` made. */
const installationRequired = process.env.ANNALIST_TEST_LLM?.trim() === 'required' && !process.env.ANNALIST_LLM_BASE_URL?.trim()

describe.skipIf(findLocalLlm() === undefined && !installationRequired)('startLocalLlmServer', () => {
  it('serves the GGUF under its file name on a free loopback port, and stop() ends the server (twice is fine)', async () => {
    const installation = findLocalLlm()
    if (!installation) throw new Error('ANNALIST_TEST_LLM=required, but `annalist setup-local-llm` installed nothing')
    const server = await startLocalLlmServer({ ...installation, contextSize: 512 })
    try {
      expect(server.baseURL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/)
      expect(server.modelId).toBe('SmolLM2-135M-Instruct.Q4_1')
      expect(isProcessAlive(server.pid)).toBe(true)
    } finally {
      await server.stop()
      await server.stop()
    }
    expect(isProcessAlive(server.pid)).toBe(false)
    await expect(fetch(`${server.baseURL}/models`)).rejects.toThrow()
  })

  it('fails with the log tail when the server exits during start', async () => {
    const installation = findLocalLlm()
    if (!installation) throw new Error('ANNALIST_TEST_LLM=required, but `annalist setup-local-llm` installed nothing')
    const missing = join(await scratchDir(), 'no-such-model.gguf')
    const start = startLocalLlmServer({ python: installation.python, modelPath: missing })
    await expect(start).rejects.toThrow(LocalLlmServerError)
    await expect(start).rejects.toThrow(/^llama\.cpp server exited during start \(code 1\) \(log .*\): .*no-such-model\.gguf/)
  })
})

describe.skipIf(findLocalLlm() === undefined && !installationRequired)('setupLocalLlm', () => {
  it('installs from the cached wheels once for concurrent callers, and finds that installation afterwards', { timeout: 300_000 }, async () => {
    const cacheDir = await scratchDir()
    const wheels = localLlmPaths(cacheDir).wheels
    await mkdir(wheels)
    const cachedWheels = localLlmPaths(annalistCacheDir()).wheels
    for (const wheel of await readdir(cachedWheels)) {
      await link(join(cachedWheels, wheel), join(wheels, wheel)).catch(() => copyFile(join(cachedWheels, wheel), join(wheels, wheel)))
    }
    const env = { ...process.env, ANNALIST_CACHE_DIR: cacheDir }
    const progress: string[] = []
    const onProgress = (line: string) => progress.push(line)
    const [first, second] = await Promise.all([setupLocalLlm({ env, onProgress }), setupLocalLlm({ env, onProgress })])
    expect(second).toEqual(first)
    expect(first).toEqual({ python: localLlmPaths(cacheDir).python, modelPath: localLlmPaths(cacheDir).modelPath })
    expect(findLocalLlm(env)).toEqual(first)
    expect(progress.filter((line) => line.startsWith('another local LLM setup holds'))).toHaveLength(1)
    expect(progress.filter((line) => line.startsWith('installing llama-cpp-python[server]==0.3.36 into'))).toHaveLength(1)
    // Everything came from the cache: no compile, no download.
    expect(progress.some((line) => /compil|download/i.test(line))).toBe(false)
    const log = await readFile(join(cacheDir, 'local-llm-setup.log'), 'utf8')
    expect(log).not.toMatch(/pip (wheel|download)/)
  })
})

describe('resolveLocalLlm', () => {
  it('names ANNALIST_LLM_BASE_URL when nothing answers there', async () => {
    const idle = `http://127.0.0.1:${await closedPort()}/v1`
    const resolving = resolveLocalLlm({ env: { ANNALIST_LLM_BASE_URL: idle } })
    await expect(resolving).rejects.toThrow(LocalLlmConnectionError)
    await expect(resolving).rejects.toThrow(`cannot use the inference server at ANNALIST_LLM_BASE_URL=${idle}: GET /models: ECONNREFUSED`)
  })
})
