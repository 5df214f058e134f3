#!/usr/bin/env node
// Entry point of `npm run bench`: the benchmarks, built into dist/annalist-bench.js (bin/launch.js).
import { fileURLToPath } from 'node:url'
import { launch } from './launch.js'

await launch('annalist-bench', fileURLToPath(import.meta.url))
