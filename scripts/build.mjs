// Builds the product into dist/ (run by `npm run build`, and by `npm ci` / `npm install` through `prepare`):
//   dist/annalist.js            the CLI, bundled by esbuild from cli/main.ts; every command is its own lazily loaded chunk
//   dist/annalist-dev.js        the dev tools (dev/main.ts: demo, chaos, fault-injecting workers), sharing chunks
//   dist/annalist-bench.js      the benchmarks (bench/main.ts, `npm run bench`)
//   dist/build-workflow-bundle.js  the build step below, bundled the same way so it shares the product's code
//   dist/workflow-bundle.js     the Temporal workflow bundle workers load, with a hash of the sources it was built from
// Dependencies stay in node_modules (packages: 'external'): native modules such as Temporal's core bridge cannot be bundled.
import { rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build } from 'esbuild'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const dist = path.join(root, 'dist')
const started = performance.now()

rmSync(dist, { recursive: true, force: true })
await build({
  absWorkingDir: root,
  entryPoints: { annalist: 'cli/main.ts', 'annalist-dev': 'dev/main.ts', 'annalist-bench': 'bench/main.ts', 'build-workflow-bundle': 'cli/buildWorkflowBundle.ts' },
  outdir: dist,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
})
const cliMs = performance.now() - started

const { buildPrebuiltWorkflowBundle } = await import(pathToFileURL(path.join(dist, 'build-workflow-bundle.js')).href)
const sources = await buildPrebuiltWorkflowBundle()
const totalMs = performance.now() - started
console.error(`annalist build: CLI in ${(cliMs / 1000).toFixed(1)} s, workflow bundle of ${sources.files.length} source files in ${((totalMs - cliMs) / 1000).toFixed(1)} s (dist/)`)
