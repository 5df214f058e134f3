import { z } from 'zod'
import { defineTool, ToolName } from './tool'

/** A document of the built-in knowledge base. */
export interface KnowledgeDocument {
  id: string
  title: string
  text: string
}

/** The built-in corpus: a small, fixed set of support documents, so lookups are deterministic. */
export const KNOWLEDGE_BASE: readonly KnowledgeDocument[] = [
  {
    id: 'kb-001',
    title: 'Refund policy',
    text: 'Customers may request a refund within 30 days of purchase. Refunds go back to the original payment method within 5 business days.',
  },
  {
    id: 'kb-002',
    title: 'Notification channels',
    text: 'Notifications can be sent by email, Slack, SMS or webhook. Email is the default channel; urgent alerts should use SMS.',
  },
  {
    id: 'kb-003',
    title: 'Account plans',
    text: 'Accounts are on the free, team or enterprise plan. Enterprise accounts get a dedicated support contact and a 99.9% uptime commitment.',
  },
  {
    id: 'kb-004',
    title: 'Data retention',
    text: 'Audit events are retained for seven years. Personal data is erased on request by destroying the tenant key, which makes stored payloads unreadable.',
  },
  {
    id: 'kb-005',
    title: 'Invoice and billing',
    text: 'Invoices are issued monthly in US dollars. Billing disputes must be raised within 60 days of the invoice date.',
  },
  {
    id: 'kb-006',
    title: 'Security incidents',
    text: 'Report a suspected security incident to the on-call engineer immediately. Incidents are triaged within one hour and customers are notified within 72 hours.',
  },
  {
    id: 'kb-007',
    title: 'Password reset',
    text: 'Users reset a password from the sign-in page. Reset links expire after 15 minutes and can be used once.',
  },
  {
    id: 'kb-008',
    title: 'Service limits',
    text: 'Each tenant may run 100 concurrent agent tasks. Requests above the limit are queued, not rejected.',
  },
]

const STOP_WORDS = new Set([
  'a', 'an', 'and', 'are', 'as', 'at', 'be', 'by', 'can', 'do', 'for', 'from', 'how', 'i', 'in', 'is', 'it', 'me', 'my', 'of', 'on',
  'or', 'our', 'the', 'to', 'we', 'what', 'when', 'which', 'who', 'why', 'with', 'you', 'your', 'please', 'find', 'search', 'about',
])

/** The distinct content words of a text: lower-cased, alphanumeric, stop words removed, a trailing plural `s` dropped. */
export function keywords(text: string): Set<string> {
  const words = text.toLowerCase().match(/[a-z0-9]+/g) ?? []
  return new Set(words.filter((word) => !STOP_WORDS.has(word)).map((word) => (word.length > 3 && word.endsWith('s') ? word.slice(0, -1) : word)))
}

/** One ranked hit. */
export const KnowledgeHit = z.object({ id: z.string(), title: z.string(), score: z.number().int().positive(), snippet: z.string() })
export type KnowledgeHit = z.infer<typeof KnowledgeHit>

/** The top `limit` documents by keyword overlap with the query (ties broken by id); documents with no overlap are left out. */
export function searchKnowledgeBase(query: string, corpus: readonly KnowledgeDocument[] = KNOWLEDGE_BASE, limit = 3): KnowledgeHit[] {
  const wanted = keywords(query)
  return corpus
    .map((doc) => {
      const have = keywords(`${doc.title} ${doc.text}`)
      let score = 0
      for (const word of wanted) if (have.has(word)) score += 1
      return { doc, score }
    })
    .filter(({ score }) => score > 0)
    .sort((a, b) => b.score - a.score || a.doc.id.localeCompare(b.doc.id))
    .slice(0, limit)
    .map(({ doc, score }) => ({ id: doc.id, title: doc.title, score, snippet: doc.text.length > 160 ? `${doc.text.slice(0, 157)}...` : doc.text }))
}

/** Parameters of the knowledge-base search tool. */
export const KnowledgeBaseParameters = z.strictObject({ query: z.string().min(1).max(1000) })
/** Result of the knowledge-base search tool. */
export const KnowledgeBaseResult = z.object({ query: z.string(), hits: z.array(KnowledgeHit).max(3) })

/** Searches the built-in knowledge base by keyword overlap and returns the top three documents. */
export const knowledgeBaseTool = defineTool({
  name: ToolName.searchKnowledgeBase,
  description: 'Searches the support knowledge base by keywords and returns the top 3 documents. Parameters: {"query": string}.',
  parameters: KnowledgeBaseParameters,
  result: KnowledgeBaseResult,
  sideEffect: false,
  execute: async ({ query }) => ({ query, hits: searchKnowledgeBase(query) }),
})
