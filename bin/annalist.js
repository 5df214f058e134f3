#!/usr/bin/env node
// Entry point of the `annalist` CLI: the built product in dist/annalist.js (bin/launch.js).
import { fileURLToPath } from 'node:url'
import { launch } from './launch.js'

await launch('annalist', fileURLToPath(import.meta.url))
