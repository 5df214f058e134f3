#!/usr/bin/env node
// Entry point of the `annalist` CLI. It runs the built product in dist/ (`npm run build`, which `npm ci` runs) on
// Node >= 22.12. Started by an older Node, it runs itself again on the Node 24 that `npm ci` installs into
// node_modules (the `node` dev dependency), so `./bin/annalist.js` behaves the same as `npx annalist` and `npm run`.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

const MIN_NODE = [22, 12]
const [major, minor] = process.versions.node.split('.').map(Number)

if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
  const projectNode = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url))
  if (!existsSync(projectNode)) {
    console.error(`annalist: needs Node >= ${MIN_NODE.join('.')}, this is ${process.version}; run \`npm ci\` (it installs Node 24 into node_modules) or install Node 24`)
    process.exit(1)
  }
  const child = spawn(projectNode, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal))
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal)
    else process.exit(code ?? 1)
  })
} else {
  const built = new URL('../dist/annalist.js', import.meta.url)
  if (!existsSync(built)) {
    console.error('annalist: the CLI is not built (no dist/annalist.js); run `npm run build` (`npm ci` does it too)')
    process.exit(1)
  }
  if (process.argv.includes('--verbose')) process.setSourceMapsEnabled(true)
  await import(pathToFileURL(fileURLToPath(built)).href)
}
