-- Up Migration
-- The key hierarchy of encryption and erasure (historian/keys, docs/erasure.md): a key-encryption key (KEK) from
-- configuration wraps one key per tenant, and the tenant key wraps one data key per task. Only wrapped keys are stored:
-- each with its AES-256-GCM nonce and ciphertext (tag appended), and the ID of the key that wraps it, which is also
-- bound into the additional authenticated data together with the row's own key ID, tenant and task.

-- The KEK versions ever used. `check_nonce`/`check_ciphertext` seal a fixed text under the version's key, so a process
-- configured with a wrong key for a version finds out before it writes anything. `retired_at`: every tenant key was
-- rewrapped under a newer version (`annalist keys rewrap`), so this version's key is no longer needed.
create table key_encryption_keys (
  version integer primary key check (version > 0),
  check_nonce bytea not null,
  check_ciphertext bytea not null,
  created_at timestamptz not null default now(),
  retired_at timestamptz
);

-- Tenant keys, wrapped by a KEK version. One current key per tenant (`annalist keys rotate` starts a new one); the older
-- ones stay to unwrap the data keys they wrapped.
create table tenant_keys (
  key_id uuid primary key,
  tenant_id text not null,
  kek_version integer not null references key_encryption_keys (version),
  nonce bytea not null,
  wrapped bytea not null,
  is_current boolean not null,
  created_at timestamptz not null default now()
);
create unique index tenant_keys_one_current on tenant_keys (tenant_id) where is_current;
create index tenant_keys_by_kek_version on tenant_keys (kek_version, key_id);

-- Data keys, one per task, wrapped by a tenant key.
create table task_data_keys (
  key_id uuid primary key,
  tenant_id text not null,
  task_id text not null,
  tenant_key_id uuid not null references tenant_keys (key_id),
  nonce bytea not null,
  wrapped bytea not null,
  created_at timestamptz not null default now(),
  unique (tenant_id, task_id)
);
create index task_data_keys_by_tenant_key on task_data_keys (tenant_key_id);

-- Tombstones: a destroyed scope (a task, or a whole tenant when task_id is null), so that "destroyed" differs from
-- "never existed" and no new key is made for it, and every destroyed key ID, so that a ciphertext naming one reads as
-- erased. They hold no key material.
create table destroyed_key_scopes (
  tenant_id text not null,
  task_id text,
  destroyed_at timestamptz not null default now(),
  constraint destroyed_key_scopes_once unique nulls not distinct (tenant_id, task_id)
);
create table destroyed_keys (
  key_id uuid primary key,
  tenant_id text not null,
  task_id text,
  destroyed_at timestamptz not null default now()
);

-- Down Migration
drop table if exists destroyed_keys;
drop table if exists destroyed_key_scopes;
drop table if exists task_data_keys;
drop table if exists tenant_keys;
drop table if exists key_encryption_keys;
