-- Up Migration

-- API keys of the HTTP query surface (api/keys.ts). Only a SHA-256 digest of each key is kept: keys are 32 random
-- bytes, so a fast unsalted hash cannot be brute-forced and lets authentication look the key up by its digest.
-- A tenant key reads one tenant; an analyst key reads every tenant and the cross-tenant analytics.
create table api_keys (
  id uuid primary key,
  key_hash text not null unique check (key_hash ~ '^[0-9a-f]{64}$'),
  -- The first 8 characters of the key, so people can tell their keys apart in listings; not enough to use one.
  prefix text not null check (char_length(prefix) = 8),
  role text not null check (role in ('tenant', 'analyst')),
  tenant_id text check (tenant_id ~ '^[a-z0-9_]{1,64}$'),
  label text not null default '' check (char_length(label) <= 200),
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  constraint api_keys_tenant_iff_tenant_role check ((role = 'tenant') = (tenant_id is not null))
);

-- Who asked the API for what: one row per request that presented credentials or was refused, written before the
-- response leaves. Append-only: the application never updates or deletes a row, and the trigger below refuses to.
create table api_access_log (
  id bigserial primary key,
  at timestamptz not null default now(),
  key_id uuid,
  role text,
  key_tenant_id text,
  method text not null,
  -- The route pattern (e.g. /v1/tenants/:tenantId/audit), or the path when no route matched.
  route text not null,
  requested_tenant text,
  -- The validated filters of an answered query; the raw query string parameters of a refused one.
  query jsonb not null default '{}'::jsonb,
  status integer not null,
  rows_returned integer,
  denied_reason text
);
create index api_access_log_key_at on api_access_log (key_id, at);
create index api_access_log_requested_tenant_at on api_access_log (requested_tenant, at);

create function api_access_log_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'api_access_log is append-only: % is not allowed', tg_op;
end;
$$;
create trigger api_access_log_append_only before update or delete on api_access_log
  for each row execute function api_access_log_append_only();

-- Down Migration

drop table api_access_log;
drop function api_access_log_append_only();
drop table api_keys;
