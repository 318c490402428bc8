-- The audit table: every response once, with the panel's mean score, its feedback, the decision (keep / drop)
-- and why: judge_failed, below_threshold (mean score under min_score) or meets_threshold.
{{ config(materialized='table', audit=true) }}

with scored as (
  select
    pair_id,
    list_avg(list_transform(judgments, lambda j: j.ratings[1])) as score,
    list_bool_or(list_transform(judgments, lambda j: j.error is not null or j.ratings[1] is null)) as failed,
    list_transform(judgments, lambda j: j.rationales[1]) as feedback,
    list_transform(judgments, lambda j: j.raw) as raw_answers,
    list_sum(list_transform(judgments, lambda j: coalesce(j.prompt_tokens, 0))) as prompt_tokens,
    list_sum(list_transform(judgments, lambda j: coalesce(j.completion_tokens, 0))) as completion_tokens
  from {{ ref('graded_responses') }}
  where pair_id in (select pair_id from {{ ref('stg_responses') }})
)
select
  s.pair_id, s.system, s.instruction, s.messages, s.response,
  g.score, g.failed, g.feedback, g.raw_answers, g.prompt_tokens, g.completion_tokens,
  case when g.failed is not false then 'drop' when g.score >= {{ var('min_score') }} then 'keep' else 'drop' end
    as decision,
  case when g.failed is not false then 'judge_failed' when g.score >= {{ var('min_score') }} then 'meets_threshold'
       else 'below_threshold' end as reason
from {{ ref('stg_responses') }} s
left join scored g using (pair_id)
