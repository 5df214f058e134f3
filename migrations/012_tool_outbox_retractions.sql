-- Up Migration
-- Compensations of send_notification (docs/workflow-changes.md, activities/tools/sendNotification.ts). When a task fails
-- after a notification went out, the notification is retracted by a second outbox row: kind 'retraction', pointing at
-- the retracted row. Its idempotency key is the compensation key (historian/eventIds.ts compensationIdempotencyKey), so
-- every attempt of the compensation leaves one row; the partial unique index makes a second retraction of the same
-- notification impossible whatever key it came with.
alter table tool_outbox
  add column kind text not null default 'notification' check (kind in ('notification', 'retraction')),
  add column retracts_id bigint references tool_outbox (id),
  add constraint tool_outbox_retraction_target check ((kind = 'retraction') = (retracts_id is not null));

create unique index tool_outbox_one_retraction_idx on tool_outbox (retracts_id) where kind = 'retraction';

-- Down Migration
-- Retraction rows are dropped with the columns that tell them apart, so a later up does not count them as notifications.
delete from tool_outbox where kind = 'retraction';
drop index if exists tool_outbox_one_retraction_idx;
alter table tool_outbox
  drop constraint if exists tool_outbox_retraction_target,
  drop column if exists retracts_id,
  drop column if exists kind;
