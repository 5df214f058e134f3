import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker'
import { packageRoot } from '../../historian/packageRoot'

const ROOT = packageRoot()

/** Absolute path of the workflows entry point the bundle is built from. */
export const WORKFLOWS_PATH = path.join(ROOT, 'workflows', 'index.ts')

/** Where `npm run build` (run by `npm ci`) writes the prebuilt workflow bundle that workers load. */
export const PREBUILT_BUNDLE_PATH = path.join(ROOT, 'dist', 'workflow-bundle.js')

/** The packages whose code goes into the bundle besides ours: a new version of either is a new bundle. */
const BUNDLED_PACKAGES = ['@temporalio/workflow', '@temporalio/common'] as const

/** What a prebuilt bundle was built from, embedded in its first line. */
export interface WorkflowSources {
  /** SHA-256 over every bundled source file of ours (path and content) and the versions of BUNDLED_PACKAGES. */
  readonly hash: string
  /** The bundled source files of ours, relative to the package root, sorted. */
  readonly files: readonly string[]
}

/** Thrown when the prebuilt workflow bundle is missing or was built from other workflow sources than those beside it. */
export class WorkflowBundleStaleError extends Error {
  constructor(reason: string) {
    super(`${reason}: run \`npm run build\` to rebuild it`)
    this.name = 'WorkflowBundleStaleError'
  }
}

const HEADER_PREFIX = '/*! annalist-workflow-sources '
const HEADER_SUFFIX = ' */'

/** Bundles the workflow code now, in memory (what a worker without a prebuilt bundle does at start-up). */
export async function bundleWorkflows(): Promise<WorkflowBundle> {
  return bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger })
}

/**
 * Build step: bundles the workflows and writes the bundle to `outPath` with a header naming the sources it was built
 * from. The header sits on the bundle's first line, before its code, so the inline source map's lines stay right.
 */
export async function buildWorkflowBundle(outPath: string = PREBUILT_BUNDLE_PATH): Promise<WorkflowSources> {
  const bundled = new Set<string>()
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: quietBundlerLogger,
    webpackConfigHook: (config) => ({
      ...config,
      plugins: [
        ...(config.plugins ?? []),
        {
          apply: (compiler) =>
            compiler.hooks.afterCompile.tap('AnnalistWorkflowSources', (compilation) => {
              for (const file of compilation.fileDependencies) bundled.add(file)
            }),
        },
      ],
    }),
  })
  const files = [...bundled]
    .filter((file) => file.startsWith(`${ROOT}${path.sep}`) && !file.includes(`${path.sep}node_modules${path.sep}`) && path.basename(file) !== 'package.json' && existsSync(file) && statSync(file).isFile())
    .map((file) => path.relative(ROOT, file))
    .sort()
  if (!files.includes(path.relative(ROOT, WORKFLOWS_PATH))) throw new Error(`the workflow bundle does not include ${WORKFLOWS_PATH}`)
  const sources: WorkflowSources = { hash: hashSources(files), files }
  mkdirSync(path.dirname(outPath), { recursive: true })
  writeFileSync(outPath, `${HEADER_PREFIX}${JSON.stringify(sources)}${HEADER_SUFFIX}${code}`)
  return sources
}

/**
 * The prebuilt bundle, checked against the workflow sources beside it: a bundle built from other sources (a `git pull`
 * without a rebuild) is refused. An installation that ships without the TypeScript sources has nothing to compare with.
 */
export function loadPrebuiltWorkflowBundle(bundlePath: string = PREBUILT_BUNDLE_PATH): WorkflowBundle {
  if (!existsSync(bundlePath)) throw new WorkflowBundleStaleError(`the prebuilt workflow bundle ${path.relative(process.cwd(), bundlePath) || bundlePath} is missing`)
  const code = readFileSync(bundlePath, 'utf8')
  const sources = readHeader(code, bundlePath)
  if (existsSync(WORKFLOWS_PATH)) {
    const changed = sources.files.filter((file) => !existsSync(path.join(ROOT, file)))
    if (changed.length > 0 || hashSources(sources.files) !== sources.hash) {
      const which = changed.length > 0 ? `${changed[0]} is gone` : 'its sources changed'
      throw new WorkflowBundleStaleError(`the workflow bundle ${path.relative(process.cwd(), bundlePath) || bundlePath} is out of date (${which})`)
    }
  }
  return { code: code.slice(code.indexOf(HEADER_SUFFIX) + HEADER_SUFFIX.length) }
}

function readHeader(code: string, bundlePath: string): WorkflowSources {
  const end = code.indexOf(HEADER_SUFFIX)
  if (!code.startsWith(HEADER_PREFIX) || end < 0) throw new WorkflowBundleStaleError(`${bundlePath} is not a workflow bundle built by \`npm run build\``)
  return JSON.parse(code.slice(HEADER_PREFIX.length, end)) as WorkflowSources
}

function hashSources(files: readonly string[]): string {
  const hash = createHash('sha256')
  for (const file of files) {
    hash.update(`${file}\0`)
    hash.update(readFileSync(path.join(ROOT, file)))
    hash.update('\0')
  }
  for (const name of BUNDLED_PACKAGES) {
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }
    hash.update(`${name}@${manifest.version}\0`)
  }
  return hash.digest('hex')
}

const noop = () => undefined
const printError = (message: string, meta?: unknown) => console.error(message, meta ?? '')
const quietBundlerLogger = { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: printError }
