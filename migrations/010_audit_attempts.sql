-- Up Migration

-- The audit trail's time filter (occurred_at, closed-open) within one tenant, in log order inside equal times.
create index audit_timeline_tenant_occurred_at on audit_timeline (tenant_id, occurred_at, position);

-- Activity attempts per task (docs/audit.md): for each activity of the task (run ID + activity ID), the highest
-- Temporal attempt number any of its events recorded; `attempts` is their sum. The per-activity maxima are kept so
-- that the projection can fold one event at a time and stay idempotent.
alter table task_summary
  add column attempts integer not null default 0 check (attempts >= 0),
  add column activity_attempts jsonb not null default '{}'::jsonb;

-- Existing rows: the same figures from the audit timeline, which holds run, activity and attempt of every event,
-- up to each summary row's last position. Exact when audit_timeline's checkpoint is not behind task_summary's.
update task_summary s
   set activity_attempts = per_task.activity_attempts,
       attempts = per_task.attempts
  from (
    select per_activity.tenant_id, per_activity.task_id,
           jsonb_object_agg(per_activity.activity, per_activity.highest) as activity_attempts,
           sum(per_activity.highest)::integer as attempts
      from (
        select a.tenant_id, a.task_id, a.run_id || '/' || a.activity_id as activity, max(a.attempt) as highest
          from audit_timeline a
          join task_summary t on t.tenant_id = a.tenant_id and t.task_id = a.task_id
         where a.position <= t.last_position
         group by a.tenant_id, a.task_id, a.run_id || '/' || a.activity_id
      ) per_activity
     group by per_activity.tenant_id, per_activity.task_id
  ) per_task
 where s.tenant_id = per_task.tenant_id and s.task_id = per_task.task_id;

-- `report --status`: one tenant's tasks in one status, in log order.
create index task_summary_tenant_status on task_summary (tenant_id, status, first_position);

-- Down Migration

drop index task_summary_tenant_status;
alter table task_summary drop column activity_attempts, drop column attempts;
drop index audit_timeline_tenant_occurred_at;
