// Shared by bin/annalist.js and bin/annalist-dev.js: runs the built entry dist/<name>.js on Node >= 22.12. Started by an
// older Node, it runs the calling script again on the Node 24 that `npm ci` installs into node_modules (the `node` dev
// dependency), forwarding signals and the exit status, so `./bin/annalist.js` behaves the same as `npx annalist`.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

const MIN_NODE = [22, 12]

/** Runs dist/`name`.js, re-running `script` (the bin file) on the project's Node first when this Node is too old. */
export async function launch(name, script) {
  const [major, minor] = process.versions.node.split('.').map(Number)
  if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
    const projectNode = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url))
    if (!existsSync(projectNode)) {
      console.error(`${name}: needs Node >= ${MIN_NODE.join('.')}, this is ${process.version}; run \`npm ci\` (it installs Node 24 into node_modules) or install Node 24`)
      process.exit(1)
    }
    const child = spawn(projectNode, [script, ...process.argv.slice(2)], { stdio: 'inherit' })
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal))
    child.on('exit', (code, signal) => {
      if (signal) process.kill(process.pid, signal)
      else process.exit(code ?? 1)
    })
    return
  }
  const built = new URL(`../dist/${name}.js`, import.meta.url)
  if (!existsSync(built)) {
    console.error(`${name}: the CLI is not built (no dist/${name}.js); run \`npm run build\` (\`npm ci\` does it too)`)
    process.exit(1)
  }
  if (process.argv.includes('--verbose')) process.setSourceMapsEnabled(true)
  await import(pathToFileURL(fileURLToPath(built)).href)
}
