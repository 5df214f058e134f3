import { describe, expect, it } from 'vitest'
import { assertMay, describeScope, holds, may, PERMISSION_NAMES, PermissionDeniedError, Role, type Permission, type Principal } from '../../api/roles'

const principal = (role: Principal['role'], tenantId: string | null, canApprove = false): Principal => ({ keyId: `key-${role}-${tenantId}-${canApprove}`, role, tenantId, canApprove })

const PRINCIPALS = {
  'tenant acme': principal(Role.tenant, 'acme'),
  'tenant acme, may approve': principal(Role.tenant, 'acme', true),
  analyst: principal(Role.analyst, null),
  'global operator': principal(Role.operator, null),
  'operator of acme': principal(Role.operator, 'acme'),
} as const

const TARGETS = ['acme', 'globex', null] as const
const ALL = TARGETS.map((target) => target ?? 'none')
const ACTIONS: readonly Permission[] = ['task.start', 'task.cancel', 'task.redrive', 'task.replay', 'task.erase', 'lifecycle.decide', 'key.create', 'key.revoke', 'keys.manage']

/**
 * The matrix written out by hand, independently of api/roles.ts: for each key, each permission it holds and the targets
 * (tenant acme, tenant globex, none) it holds it on. Anything not listed is refused.
 */
const EXPECTED: Record<keyof typeof PRINCIPALS, Partial<Record<Permission, readonly string[]>>> = {
  'tenant acme': { 'tenant.read': ['acme'], 'task.start': ['acme'] },
  'tenant acme, may approve': { 'tenant.read': ['acme'], 'task.start': ['acme'], 'task.approve': ['acme'] },
  analyst: { 'tenant.read': ALL, 'analytics.read': ALL, 'operations.read': ALL },
  'global operator': {
    'operations.read': ALL,
    ...Object.fromEntries(ACTIONS.map((action) => [action, ALL])),
    'projectionDeadLetter.retry': ALL,
    'projection.rebuild': ALL,
    'signingKeys.manage': ALL,
  },
  'operator of acme': Object.fromEntries(ACTIONS.map((action) => [action, ['acme']])),
}

/** The permissions this test knows; a new permission must be added here (and to EXPECTED) or the first test fails. */
const KNOWN: readonly Permission[] = [
  'tenant.read',
  'analytics.read',
  'operations.read',
  'task.start',
  'task.cancel',
  'task.redrive',
  'task.replay',
  'task.erase',
  'task.approve',
  'lifecycle.decide',
  'key.create',
  'key.revoke',
  'keys.manage',
  'projectionDeadLetter.retry',
  'projection.rebuild',
  'signingKeys.manage',
]

describe('the role model', () => {
  it('has exactly the permissions this test covers', () => {
    expect([...PERMISSION_NAMES].sort()).toEqual([...KNOWN].sort())
  })

  const cases = Object.entries(PRINCIPALS).flatMap(([name, key]) =>
    KNOWN.flatMap((permission) =>
      TARGETS.map((target) => ({
        name,
        key,
        permission,
        target,
        allowed: (EXPECTED[name as keyof typeof PRINCIPALS][permission] ?? []).includes(target ?? 'none'),
      })),
    ),
  )

  it.each(cases)('$name, $permission on $target: allowed $allowed', ({ key, permission, target, allowed }) => {
    expect(may(key, permission, target)).toBe(allowed)
    if (allowed) expect(() => assertMay(key, permission, target)).not.toThrow()
    else expect(() => assertMay(key, permission, target)).toThrow(PermissionDeniedError)
  })

  it('separates duties: analysts and tenant keys change nothing but a tenant key its own tasks; operators read no tenant content or analytics', () => {
    const changesState = (permission: Permission) => !permission.endsWith('.read')
    for (const permission of KNOWN.filter(changesState)) expect(holds(PRINCIPALS.analyst, permission), permission).toBe(false)
    expect(KNOWN.filter((permission) => changesState(permission) && holds(PRINCIPALS['tenant acme, may approve'], permission))).toEqual(['task.start', 'task.approve'])
    expect(holds(PRINCIPALS['global operator'], 'tenant.read')).toBe(false)
    expect(holds(PRINCIPALS['global operator'], 'analytics.read')).toBe(false)
    expect(holds(PRINCIPALS['global operator'], 'task.approve')).toBe(false)
  })

  it('refuses in one line that names the key ID, its scope and the permission, never more for a tenant that exists', () => {
    const acmeOperator = PRINCIPALS['operator of acme']
    const refusal = (tenant: string) => {
      try {
        assertMay(acmeOperator, 'task.redrive', tenant)
      } catch (error) {
        return (error as Error).message
      }
      return 'allowed'
    }
    expect(refusal('globex')).toBe(`API key ${acmeOperator.keyId} (operator of tenant acme) may not task.redrive for tenant "globex"`)
    expect(refusal('no_such_tenant')).toBe(refusal('globex').replace('globex', 'no_such_tenant'))
    expect(refusal('x\ny')).not.toContain('\n')
    expect(describeScope(PRINCIPALS['tenant acme, may approve'])).toBe('tenant acme, may approve')
    expect(describeScope(PRINCIPALS['global operator'])).toBe('global operator')
  })
})
