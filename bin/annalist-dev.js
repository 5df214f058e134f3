#!/usr/bin/env node
// Entry point of `annalist-dev`: the demo, the fault campaign, benchmarks and fault-injecting workers, built into
// dist/annalist-dev.js (bin/launch.js). Not part of what a production deployment runs.
import { fileURLToPath } from 'node:url'
import { launch } from './launch.js'

await launch('annalist-dev', fileURLToPath(import.meta.url))
