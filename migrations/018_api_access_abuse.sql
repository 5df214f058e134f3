-- Up Migration

-- The client address of each logged request (the socket's, or the one a trusted proxy forwarded: docs/api.md).
-- Addresses are personal data: api_forget_client_addresses below removes them after the retention period.
alter table api_access_log add column client_address text;

-- Requests without a valid key, counted per client address, UTC minute, status and reason. The first few of each
-- such group also get a row of their own in api_access_log (api/accessLog.ts); the count covers them all, so a flood
-- of refusals costs one row per group and minute instead of one per request.
create table api_access_refusals (
  client_address text,
  minute timestamptz not null check (minute = date_trunc('minute', minute)),
  status integer not null,
  reason text not null,
  count bigint not null check (count > 0),
  constraint api_access_refusals_group unique nulls not distinct (client_address, minute, status, reason)
);
create index api_access_refusals_minute on api_access_refusals (minute);

-- The append-only trigger allows exactly one update: a row's client address set to null, nothing else changed, on a
-- row older than the cutoff that api_forget_client_addresses sets for its own transaction. Deletes stay refused.
create or replace function api_access_log_append_only() returns trigger language plpgsql as $$
declare
  cutoff timestamptz := nullif(current_setting('annalist.forget_addresses_before', true), '')::timestamptz;
begin
  if tg_op = 'UPDATE' and cutoff is not null and old.at < cutoff and new.client_address is null
     and to_jsonb(new) - 'client_address' = to_jsonb(old) - 'client_address' then
    return new;
  end if;
  raise exception 'api_access_log is append-only: % is not allowed', tg_op;
end;
$$;

-- Removes client addresses recorded before now() - retention: nulls them in the access log (the only update its
-- trigger allows) and folds the refusal counts of those minutes into address-less groups. Returns how many access
-- log rows lost their address.
create function api_forget_client_addresses(retention interval) returns bigint language plpgsql as $$
declare
  cutoff timestamptz := now() - retention;
  forgotten bigint;
begin
  if retention < interval '1 hour' then
    raise exception 'address retention must be at least one hour, got %', retention;
  end if;
  perform set_config('annalist.forget_addresses_before', cutoff::text, true);
  update api_access_log set client_address = null where at < cutoff and client_address is not null;
  get diagnostics forgotten = row_count;
  perform set_config('annalist.forget_addresses_before', '', true);
  with gone as (
    delete from api_access_refusals where minute < cutoff and client_address is not null
    returning minute, status, reason, count
  )
  insert into api_access_refusals (client_address, minute, status, reason, count)
  select null, minute, status, reason, sum(count) from gone group by minute, status, reason
  on conflict (client_address, minute, status, reason) do update set count = api_access_refusals.count + excluded.count;
  return forgotten;
end;
$$;

-- Down Migration

drop function api_forget_client_addresses(interval);
create or replace function api_access_log_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'api_access_log is append-only: % is not allowed', tg_op;
end;
$$;
drop table api_access_refusals;
alter table api_access_log drop column client_address;
