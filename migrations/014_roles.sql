-- Up Migration
-- One role model (api/roles.ts, docs/roles.md). Besides tenant and analyst keys there are operator keys: an operator
-- acts (starts, redrives, replays, revokes keys, rebuilds) but does not read tenant content. An operator key is global
-- (no tenant) or scoped to one tenant. A tenant key may also be created able to approve (can_approve); no other key can.
-- Existing keys keep their role and scope, and none may approve.
alter table api_keys drop constraint api_keys_role_check;
alter table api_keys drop constraint api_keys_tenant_iff_tenant_role;
alter table api_keys
  add column can_approve boolean not null default false,
  add constraint api_keys_role_check check (role in ('tenant', 'analyst', 'operator')),
  add constraint api_keys_tenant_scope check (
    case role when 'tenant' then tenant_id is not null when 'analyst' then tenant_id is null else true end
  ),
  add constraint api_keys_only_tenant_keys_approve check (not can_approve or role = 'tenant');
-- The bootstrap rule (`api-keys create --operator` without ANNALIST_API_KEY while no active global operator exists)
-- looks for this.
create index api_keys_active_global_operators on api_keys (role) where tenant_id is null and revoked_at is null;

-- Down Migration
-- Operator keys cannot be expressed in the older schema: they are deleted, and the approval flag is dropped.
drop index if exists api_keys_active_global_operators;
delete from api_keys where role = 'operator';
alter table api_keys
  drop constraint api_keys_only_tenant_keys_approve,
  drop constraint api_keys_tenant_scope,
  drop constraint api_keys_role_check,
  drop column can_approve;
alter table api_keys
  add constraint api_keys_role_check check (role in ('tenant', 'analyst')),
  add constraint api_keys_tenant_iff_tenant_role check ((role = 'tenant') = (tenant_id is not null));
