-- Up Migration
-- The payload store (historian/payloads, docs/erasure.md "Content references and the payload store"): content that
-- events hold only as a reference `{ ref, digest, classification }` lives here, encrypted with AES-256-GCM under its
-- task's data key (historian/keys/contentCipher.ts). No plaintext and no length column: the plaintext is padded to a
-- power-of-two bucket before encryption, so the ciphertext's length reveals only the bucket.
--
-- `ref`: deterministic (an HMAC of tenant, task, purpose and idempotency key under the task's data key), so a rewrite
-- finds its row and the EventStoreDB path can write the payload before the event. `digest`: the content's keyed
-- digest (HMAC-SHA256 under a key derived from the data key), kept so an idempotent rewrite can tell same content from
-- different. `key_id`: the data key the ciphertext is under (no foreign key: destroying the key deletes its row).
-- `nonce`/`ciphertext` (tag appended): as contentCipher produces them; both null once the row was shredded, with
-- `shredded_at` telling a reader that the content is erased rather than unknown.
create table content_payloads (
  ref uuid primary key,
  tenant_id text not null,
  task_id text not null,
  purpose text not null,
  classification text not null check (classification in ('public', 'internal', 'confidential', 'restricted')),
  digest text not null,
  key_id uuid not null,
  nonce bytea,
  ciphertext bytea,
  created_at timestamptz not null default now(),
  shredded_at timestamptz,
  constraint content_payloads_shredded_or_sealed check (
    (shredded_at is null and nonce is not null and ciphertext is not null) or (shredded_at is not null and nonce is null and ciphertext is null)
  )
);
create index content_payloads_by_task on content_payloads (tenant_id, task_id);
create index content_payloads_by_age on content_payloads (created_at, ref);

-- Down Migration
drop table if exists content_payloads;
