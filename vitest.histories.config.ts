import { defineConfig } from 'vitest/config'
import base from './vitest.config'

// `npm run histories:record`: re-records test/support/histories/*.json (not part of `npm test`).
export default defineConfig({ ...base, test: { ...base.test, include: ['test/support/histories/record.histories.ts'] } })
