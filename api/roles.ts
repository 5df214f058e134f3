/**
 * The one role model of Annalist: who holds which key, and what each key may do. The HTTP API (api/accessControl.ts)
 * and the CLI (cli/runtime/callerPermission.ts) both decide with `may` over PERMISSIONS, so a permission is defined once.
 * docs/roles.md explains the model and the separation of duties.
 */

/** What a key is for: a tenant's own client, a read-only analyst, or an operator who acts but does not read content. */
export const Role = { tenant: 'tenant', analyst: 'analyst', operator: 'operator' } as const
export type Role = (typeof Role)[keyof typeof Role]

/** Whether a role holds a permission: always, never, or (tenant keys) only when the key was created able to approve. */
export const Grant = { yes: 'yes', no: 'no', ifCanApprove: 'ifCanApprove' } as const
export type Grant = (typeof Grant)[keyof typeof Grant]

/**
 * What a permission acts on: one tenant (the key's scope must cover it) or the whole installation (only keys with no
 * tenant scope, analyst or global operator, may hold it).
 */
export const Target = { tenant: 'tenant', global: 'global' } as const
export type Target = (typeof Target)[keyof typeof Target]

/** One row of the matrix. */
export interface PermissionRule {
  readonly target: Target
  readonly summary: string
  readonly grants: Readonly<Record<Role, Grant>>
}

const { yes, no, ifCanApprove } = Grant
const grants = (tenant: Grant, analyst: Grant, operator: Grant) => ({ tenant, analyst, operator })

/** The permission matrix: every action a key can be allowed, what it acts on, and which roles hold it. */
export const PERMISSIONS = {
  'tenant.read': { target: Target.tenant, summary: "read a tenant's audit trail, task summaries, dead-lettered tasks and export", grants: grants(yes, yes, no) },
  'analytics.read': { target: Target.global, summary: 'read the cross-tenant analytics', grants: grants(no, yes, no) },
  'operations.read': { target: Target.global, summary: 'read projection lag and Prometheus metrics', grants: grants(no, yes, yes) },
  'task.start': { target: Target.tenant, summary: 'start a task', grants: grants(yes, no, yes) },
  'task.cancel': { target: Target.tenant, summary: 'cancel a running task', grants: grants(no, no, yes) },
  'task.redrive': { target: Target.tenant, summary: 'redrive a dead-lettered task', grants: grants(no, no, yes) },
  'task.replay': { target: Target.tenant, summary: 'replay a task from a checkpoint as a new linked run', grants: grants(no, no, yes) },
  'task.erase': { target: Target.tenant, summary: "erase a task's content (crypto-shredding; not built yet)", grants: grants(no, no, yes) },
  'task.approve': { target: Target.tenant, summary: 'approve a step that waits for approval (not built yet)', grants: grants(ifCanApprove, no, no) },
  'lifecycle.decide': { target: Target.tenant, summary: 'decide soft deletion, tombstones and retention', grants: grants(no, no, yes) },
  'key.create': { target: Target.tenant, summary: 'create an API key (target: the new key\'s tenant; none for a global key)', grants: grants(no, no, yes) },
  'key.revoke': { target: Target.tenant, summary: 'revoke an API key (target: the key\'s tenant; none for a global key)', grants: grants(no, no, yes) },
  'keys.manage': { target: Target.tenant, summary: "rotate a tenant's encryption key (`keys rotate`); rewrap every tenant key under the current KEK (`keys rewrap`, no single tenant)", grants: grants(no, no, yes) },
  'projectionDeadLetter.retry': { target: Target.global, summary: "retry events a projection dead-lettered", grants: grants(no, no, yes) },
  'projection.rebuild': { target: Target.global, summary: 'rebuild a projection', grants: grants(no, no, yes) },
  'signingKeys.manage': { target: Target.global, summary: 'create and rotate the Ed25519 keys that sign evidence', grants: grants(no, no, yes) },
} as const satisfies Record<string, PermissionRule>

/** An action a key may be allowed; the keys of PERMISSIONS. */
export type Permission = keyof typeof PERMISSIONS

/** Every permission, in matrix order. */
export const PERMISSION_NAMES = Object.keys(PERMISSIONS) as Permission[]

/** Who acts: the key's ID (never the key), its role, its tenant scope (null: every tenant) and whether it may approve. */
export interface Principal {
  readonly keyId: string
  readonly role: Role
  /** The one tenant the key is scoped to (tenant keys, scoped operator keys); null for analyst and global operator keys. */
  readonly tenantId: string | null
  /** Tenant keys only: whether the key may approve (task.approve). */
  readonly canApprove: boolean
}

/**
 * Whether `principal` may do `permission` on `tenantId` (null: on no single tenant, e.g. a global key or the whole
 * installation). The role must hold the permission; a scoped key acts only on its own tenant, never on a global target.
 * The answer depends only on the key and the tenant ID asked for, never on whether that tenant exists.
 */
export function may(principal: Principal, permission: Permission, tenantId: string | null): boolean {
  if (!holds(principal, permission)) return false
  if (principal.tenantId === null) return true
  return PERMISSIONS[permission].target === Target.tenant && tenantId === principal.tenantId
}

/** Whether the key's role holds `permission` at all, on some target (the first half of `may`). */
export function holds(principal: Pick<Principal, 'role' | 'canApprove'>, permission: Permission): boolean {
  const grant: Grant = PERMISSIONS[permission].grants[principal.role]
  return grant === Grant.yes || (grant === Grant.ifCanApprove && principal.canApprove)
}

/**
 * Thrown when a key lacks a permission for a target. The message names the key ID, role and permission and the tenant
 * asked for, and is the same whether or not that tenant (or resource) exists.
 */
export class PermissionDeniedError extends Error {
  constructor(
    readonly principal: Principal,
    readonly permission: Permission,
    readonly tenantId: string | null,
  ) {
    super(`API key ${principal.keyId} (${describeScope(principal)}) may not ${permission}${tenantId === null ? '' : ` for tenant ${JSON.stringify(tenantId.slice(0, 64))}`}`)
    this.name = 'PermissionDeniedError'
  }
}

/** Throws PermissionDeniedError unless `may(principal, permission, tenantId)`. */
export function assertMay(principal: Principal, permission: Permission, tenantId: string | null): void {
  if (!may(principal, permission, tenantId)) throw new PermissionDeniedError(principal, permission, tenantId)
}

/** A key's role and scope in words, e.g. "operator of tenant acme" or "global operator". */
export function describeScope(principal: Pick<Principal, 'role' | 'tenantId' | 'canApprove'>): string {
  if (principal.role === Role.analyst) return 'analyst'
  if (principal.role === Role.tenant) return `tenant ${principal.tenantId}${principal.canApprove ? ', may approve' : ''}`
  return principal.tenantId === null ? 'global operator' : `operator of tenant ${principal.tenantId}`
}
