import type { TestProject } from 'vitest/node'
import pg from 'pg'
import type {} from 'vitest'

import { findLocalLlm } from '../../cli/runtime/localLlm'
import { resolveLocalLlm, type LocalLlmEndpoint } from '../../cli/runtime/localLlmServer'
import { resolveTemporal, type TemporalEndpoint } from '../../cli/runtime/temporalServer'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the real PostgreSQL server the tests create their databases on. */
    postgresAdminUrl: string
    /** Address of the Temporal server the tests use. */
    temporalAddress: string
    /** Namespace on that Temporal server (TEMPORAL_NAMESPACE, default `default`). */
    temporalNamespace: string
    /** OpenAI base URL (`.../v1`) of the real inference server the tests use; empty when there is none (see realModelServer). */
    llmBaseUrl: string
    /** The model to ask that server for; empty when there is none. */
    llmModelId: string
  }
}

const DEFAULT_LOCAL_POSTGRES = 'postgres://postgres:postgres@127.0.0.1:5432/postgres'

async function checkPostgres(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  try {
    await client.connect()
    await client.query('select 1')
  } catch (error) {
    throw new Error(
      `tests need a real PostgreSQL server at ${url.replace(/:[^:@/]*@/, ':***@')} (${(error as Error).message}); ` +
        'run `bash .ci/run` to install and start one, or set TEST_DATABASE_URL',
    )
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** One Temporal server for the whole run: TEMPORAL_ADDRESS if set, else a dev server (built with Go on first use). */
async function startTemporal(): Promise<TemporalEndpoint> {
  const started = Date.now()
  const temporal = await resolveTemporal({
    allowBuild: true,
    onProgress: (msg) => process.stderr.write(`[temporal] ${msg}\n`),
  })
  process.stderr.write(
    `[temporal] ${temporal.source} server at ${temporal.address} ready in ${((Date.now() - started) / 1000).toFixed(1)}s\n`,
  )
  return temporal
}

/**
 * One inference server for the whole run: ANNALIST_LLM_BASE_URL if set, else a llama.cpp server from the installation
 * `annalist setup-local-llm` made; undefined when there is neither. With ANNALIST_TEST_LLM=required (CI), having none
 * is an error: the tests that need a real model must not skip there.
 */
async function startLocalLlm(): Promise<LocalLlmEndpoint | undefined> {
  const required = process.env.ANNALIST_TEST_LLM?.trim() ?? ''
  if (required !== '' && required !== 'required') {
    throw new Error(`ANNALIST_TEST_LLM=${required}: the only value is \`required\` (or leave it unset)`)
  }
  if (!process.env.ANNALIST_LLM_BASE_URL?.trim() && !findLocalLlm() && required === '') {
    process.stderr.write('[llm] no local inference server installed (`npx annalist setup-local-llm`): the real-model tests skip\n')
    return undefined
  }
  const started = Date.now()
  try {
    const llm = await resolveLocalLlm({ onProgress: (msg) => process.stderr.write(`[llm] ${msg}\n`) })
    process.stderr.write(`[llm] ${llm.source} server at ${llm.baseURL} (model ${llm.modelId}) ready in ${((Date.now() - started) / 1000).toFixed(1)}s\n`)
    return llm
  } catch (error) {
    if (required === '') throw error
    throw new Error(`ANNALIST_TEST_LLM=required: ${(error as Error).message}`)
  }
}

export default async function setup(project: TestProject) {
  const postgresAdminUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? DEFAULT_LOCAL_POSTGRES
  const [postgres, temporal, llm] = await Promise.allSettled([checkPostgres(postgresAdminUrl), startTemporal(), startLocalLlm()])
  if (postgres.status === 'rejected' || temporal.status === 'rejected' || llm.status === 'rejected') {
    await Promise.all([
      temporal.status === 'fulfilled' ? temporal.value.stop() : undefined,
      llm.status === 'fulfilled' ? llm.value?.stop() : undefined,
    ])
    throw [postgres, temporal, llm].flatMap((result) => (result.status === 'rejected' ? [result.reason] : []))[0]
  }
  const temporalServer = temporal.value
  const llmServer = llm.value
  project.provide('postgresAdminUrl', postgresAdminUrl)
  project.provide('temporalAddress', temporalServer.address)
  project.provide('temporalNamespace', temporalServer.namespace)
  project.provide('llmBaseUrl', llmServer?.baseURL ?? '')
  project.provide('llmModelId', llmServer?.modelId ?? '')
  return async () => {
    await Promise.all([temporalServer.stop(), llmServer?.stop()])
  }
}
