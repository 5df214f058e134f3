#!/usr/bin/env node
// Entry point of the `annalist` CLI: runs the TypeScript sources through tsx, so a checkout needs no build step.
import { register } from 'tsx/esm/api'

register()
await import('../cli/main.ts')
