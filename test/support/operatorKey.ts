import type pg from 'pg'
import { createApiKey } from '../../api/keys'

/**
 * The environment a CLI run needs to change state: ANNALIST_API_KEY holding a new global operator key in `pool`'s
 * database (docs/roles.md).
 */
export async function operatorKeyEnv(pool: pg.Pool): Promise<{ ANNALIST_API_KEY: string }> {
  const { key } = await createApiKey(pool, { role: 'operator', label: 'test operator' })
  return { ANNALIST_API_KEY: key }
}
