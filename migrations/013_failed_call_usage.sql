-- Up Migration
-- Failed model calls cost money too (docs/analytics.md, docs/audit.md). Model events from schema v2 on (v3 for
-- RoutingModelInvoked) record `usage` on failures as well as successes, with `usage.reported`: true when the provider
-- reported it, false when it did not (a timeout, an abort, a server without usage), the tokens then being an estimate
-- from the prompt's length. The read models now keep both apart:
--   task_summary: total_tokens and total_cost_usd sum the REPORTED usage of every call, successful or failed;
--     failed_call_cost_usd is the failed calls' part of total_cost_usd; the calls without reported usage are counted,
--     and their estimate kept in its own columns, outside the totals.
--   analytics_model_invocations: a failed call's row holds its usage (it held 0), and usage_reported tells which.
--   audit_timeline: a failed call's row holds its usage (it held null); usage_reported, finish_reason and
--     structured_output_path for model calls.
--
-- Existing rows are filled in from the event log when it is in this database (the PostgreSQL event store): each value
-- is then what the projections compute from the same event, read as the upcasters read it (a v1 success reported its
-- usage; a v1 failure recorded none: 0 tokens, not reported). Rows whose events are not here (EventStoreDB as the log)
-- get what the upcasters give a v1 event, which is exact for logs written before the model events' v2; run
-- `annalist rebuild all` if such a log holds v2 model events (it reports whether the rebuilt model differed).

alter table task_summary
  add column failed_call_cost_usd numeric not null default 0,
  add column calls_without_reported_usage integer not null default 0 check (calls_without_reported_usage >= 0),
  add column estimated_unreported_tokens bigint not null default 0,
  add column estimated_unreported_cost_usd numeric not null default 0;

alter table analytics_model_invocations add column usage_reported boolean;

alter table audit_timeline
  add column usage_reported boolean,
  add column finish_reason text,
  add column structured_output_path text;

-- Each model event of the log, with its usage read as the upcasters read it.
create temporary table annalist_013_model_calls as
select e.position, e.stream_name, e.event_id::text as event_id, e.event_type,
       e.event_type like '%Failed' as failed,
       coalesce((e.data -> 'usage' ->> 'reported')::boolean, e.event_type not like '%Failed') as reported,
       coalesce((e.data -> 'usage' ->> 'inputTokens')::bigint, 0) as input_tokens,
       coalesce((e.data -> 'usage' ->> 'outputTokens')::bigint, 0) as output_tokens,
       coalesce((e.data -> 'usage' ->> 'costUsd')::numeric, 0) as cost_usd,
       e.data ->> 'finishReason' as finish_reason,
       e.data -> 'structuredOutput' ->> 'path' as structured_output_path
  from events e
 where e.event_type in ('RoutingModelInvoked', 'PlanCreated', 'PlanIterationCreated', 'SynthesisModelInvoked',
                        'RoutingModelFailed', 'PlanningModelFailed', 'SynthesisModelFailed');

update audit_timeline a
   set input_tokens = m.input_tokens,
       output_tokens = m.output_tokens,
       cost_usd = m.cost_usd,
       usage_reported = m.reported,
       finish_reason = m.finish_reason,
       structured_output_path = m.structured_output_path
  from annalist_013_model_calls m
 where m.position = a.position and m.event_id = a.event_id;
update audit_timeline
   set input_tokens = coalesce(input_tokens, 0),
       output_tokens = coalesce(output_tokens, 0),
       cost_usd = coalesce(cost_usd, 0),
       usage_reported = event_type not like '%Failed'
 where usage_reported is null
   and event_type in ('RoutingModelInvoked', 'PlanCreated', 'PlanIterationCreated', 'SynthesisModelInvoked',
                      'RoutingModelFailed', 'PlanningModelFailed', 'SynthesisModelFailed');

update analytics_model_invocations a
   set input_tokens = m.input_tokens,
       output_tokens = m.output_tokens,
       cost_usd = m.cost_usd,
       usage_reported = m.reported
  from annalist_013_model_calls m
 where m.position = a.position and m.stream_name = 'tenant_' || a.tenant_id || '-' || a.task_id;
update analytics_model_invocations set usage_reported = (outcome = 'ok') where usage_reported is null;
alter table analytics_model_invocations alter column usage_reported set not null;

-- Tasks first as the upcasters read v1 events (every failed call without reported usage, no estimate); then, for each
-- task whose folded events are all here (their count equals events_applied), every figure from its events, the totals
-- too, since the older projection left failed calls out of them and counted unreported successes in.
update task_summary set calls_without_reported_usage = model_attempts_failed;
update task_summary s
   set total_tokens = u.reported_tokens,
       total_cost_usd = u.reported_cost,
       failed_call_cost_usd = u.failed_cost,
       calls_without_reported_usage = u.unreported_calls,
       estimated_unreported_tokens = u.estimated_tokens,
       estimated_unreported_cost_usd = u.estimated_cost
  from (
    select t.tenant_id, t.task_id, count(*) as events,
           coalesce(sum(m.input_tokens + m.output_tokens) filter (where m.reported), 0) as reported_tokens,
           coalesce(sum(m.cost_usd) filter (where m.reported), 0) as reported_cost,
           coalesce(sum(m.cost_usd) filter (where m.reported and m.failed), 0) as failed_cost,
           count(m.position) filter (where not m.reported) as unreported_calls,
           coalesce(sum(m.input_tokens + m.output_tokens) filter (where not m.reported), 0) as estimated_tokens,
           coalesce(sum(m.cost_usd) filter (where not m.reported), 0) as estimated_cost
      from task_summary t
      join events e on e.stream_name = 'tenant_' || t.tenant_id || '-' || t.task_id and e.position <= t.last_position
      left join annalist_013_model_calls m on m.position = e.position
     group by t.tenant_id, t.task_id
  ) u
 where s.tenant_id = u.tenant_id and s.task_id = u.task_id and u.events = s.events_applied;

drop table annalist_013_model_calls;

-- Down Migration
-- The added columns go. The columns that stay keep the new meaning (a failed call's usage in audit_timeline and
-- analytics_model_invocations; reported usage of every call in task_summary's totals): after migrating down, run
-- `annalist rebuild all` with the older build to give them its meaning again.
alter table audit_timeline
  drop column if exists structured_output_path,
  drop column if exists finish_reason,
  drop column if exists usage_reported;
alter table analytics_model_invocations drop column if exists usage_reported;
alter table task_summary
  drop column if exists estimated_unreported_cost_usd,
  drop column if exists estimated_unreported_tokens,
  drop column if exists calls_without_reported_usage,
  drop column if exists failed_call_cost_usd;
