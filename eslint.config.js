import js from '@eslint/js'
import tseslint from 'typescript-eslint'

import { builtinModules } from 'node:module'

const nodeBuiltinPaths = builtinModules.map((name) => ({ name, message: 'workflows must not import Node modules' }))

export default tseslint.config(
  { ignores: ['node_modules/**', '.annalist/**', 'bin/**', 'dist/**', '.dependency-cruiser.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Build scripts are plain ES modules run by Node.
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: { console: 'readonly', performance: 'readonly', process: 'readonly' } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node modules, no adapters, no database clients,
    // and activities only as types (a value import drags their dependencies into the workflow bundle).
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltinPaths,
            { name: 'pg', message: 'workflows must not import database clients' },
            { name: '@eventstore/db-client', message: 'workflows must not import database clients' },
            { name: '@electric-sql/pglite', message: 'workflows must not import database clients' },
          ],
          patterns: [
            { group: ['node:*'], message: 'workflows must not import Node modules' },
            { group: ['**/historian/adapters/**', '**/historian/historian', '**/historian/port'], message: 'workflows must not import the historian adapters or port' },
            { group: ['**/activities/**'], allowTypeImports: true, message: 'workflows may import activities only with `import type`' },
            { group: ['**/cli/**', '**/projections/**'], message: 'workflows must not import processes or projections' },
          ],
        },
      ],
    },
  },
)
