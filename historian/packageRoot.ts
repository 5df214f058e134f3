import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const PACKAGE_NAME = 'annalist'

/**
 * The directory of Annalist's own package.json, found by walking up from `moduleUrl`. Works the same from the
 * TypeScript sources (tests) and from the built product in `dist/`, whose chunks sit at another depth.
 */
export function packageRoot(moduleUrl: string = import.meta.url): string {
  let dir = path.dirname(fileURLToPath(moduleUrl))
  for (;;) {
    const manifest = path.join(dir, 'package.json')
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === PACKAGE_NAME) return dir
    const parent = path.dirname(dir)
    if (parent === dir) throw new Error(`cannot find Annalist's package.json above ${fileURLToPath(moduleUrl)}`)
    dir = parent
  }
}
