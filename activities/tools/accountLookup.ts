import { createHash } from 'node:crypto'
import { z } from 'zod'
import { defineTool, type ToolDefinition, ToolName } from './tool'

/** Thrown when the simulated account API has no account with the requested id (ids starting with `missing`). */
export class AccountNotFoundError extends Error {
  constructor(readonly accountId: string) {
    super(`account ${accountId} not found`)
    this.name = 'AccountNotFoundError'
  }
}

/** Parameters of the lookup_account tool. */
export const AccountLookupParameters = z.strictObject({ accountId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'accountId must match ^[A-Za-z0-9_-]{1,64}$') })
/** What the account API answers. */
export const AccountRecord = z.object({
  accountId: z.string(),
  holderName: z.string(),
  plan: z.enum(['free', 'team', 'enterprise']),
  status: z.enum(['active', 'suspended']),
  balanceUsd: z.number(),
  currency: z.literal('USD'),
  openedOn: z.iso.date(),
})
export type AccountRecord = z.infer<typeof AccountRecord>

const HOLDERS = ['Ada Byron', 'Grace Hopper', 'Alan Turing', 'Katherine Johnson', 'Edsger Dijkstra', 'Barbara Liskov', 'Donald Knuth', 'Frances Allen']
const PLANS = ['free', 'team', 'enterprise'] as const

/** The fake account behind an id: a pure function of the id (derived from its SHA-256), like a stable external record. */
export function simulatedAccount(accountId: string): AccountRecord {
  const digest = createHash('sha256').update(accountId).digest()
  const day = new Date(Date.UTC(2015, 0, 1) + digest.readUInt16BE(4) * 86_400_000 / 16)
  return {
    accountId,
    holderName: HOLDERS[(digest[0] as number) % HOLDERS.length] as string,
    plan: PLANS[(digest[1] as number) % PLANS.length] as AccountRecord['plan'],
    status: (digest[2] as number) % 10 === 0 ? 'suspended' : 'active',
    balanceUsd: digest.readUInt32BE(6) % 1_000_000 / 100,
    currency: 'USD',
    openedOn: day.toISOString().slice(0, 10),
  }
}

/**
 * Looks up a customer account in a simulated external account API. Its result is checked against the account schema,
 * so an API answering garbage (dev/faults/faultyTools.ts makes it do so) is a TOOL_RESPONSE_MALFORMED.
 */
export const accountLookupTool: ToolDefinition<z.infer<typeof AccountLookupParameters>, AccountRecord> = defineTool({
  name: ToolName.lookupAccount,
  description: 'Looks up a customer account (holder, plan, status, balance) in the account system. Parameters: {"accountId": string}.',
  parameters: AccountLookupParameters,
  result: AccountRecord,
  sideEffect: false,
  execute: async ({ accountId }) => {
    if (accountId.toLowerCase().startsWith('missing')) throw new AccountNotFoundError(accountId)
    return simulatedAccount(accountId)
  },
})
