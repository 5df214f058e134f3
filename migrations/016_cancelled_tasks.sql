-- Up Migration

-- A pipeline can now end cancelled (AgentTaskCancelled, docs/cancellation.md): task_summary may say so.
alter table task_summary drop constraint task_summary_status_check;
alter table task_summary add constraint task_summary_status_check check (status in ('received', 'running', 'completed', 'failed', 'cancelled'));

-- Down Migration

alter table task_summary drop constraint task_summary_status_check;
alter table task_summary add constraint task_summary_status_check check (status in ('received', 'running', 'completed', 'failed'));
