-- One row per pair and judge: the shuffle undone, so ratings belong to `chosen` and `rejected`.
{{ config(materialized='table') }}

with per_judge as (
  select
    pair_id,
    "order",
    unnest(judgments) as j,
    unnest(judgments_reversed) as r,
    unnest(range(1, len(judgments) + 1)) as member
  from {{ ref('judged_pairs') }}
  -- judged_pairs keeps judgments of pairs that left the source (a returning pair costs nothing); only
  -- the pairs in the source now go on
  where pair_id in (select pair_id from {{ ref('shuffled_pairs') }})
)
select
  pair_id,
  j.judge as judge,
  j.model as judge_model,
  j.aspect as aspect,  -- the rated aspect (the calibration report splits by it)
  {{ rating_of('j', '"order"', 'chosen') }} as chosen_rating,
  {{ rating_of('j', '"order"', 'rejected') }} as rejected_rating,
  {{ rationale_of('j', '"order"', 'chosen') }} as chosen_rationale,
  {{ rationale_of('j', '"order"', 'rejected') }} as rejected_rationale,
  {{ rating_of('r', '"order"', 'chosen', reversed=true) }} as chosen_rating_swapped,
  {{ rating_of('r', '"order"', 'rejected', reversed=true) }} as rejected_rating_swapped,
  r is not null as bias_checked,
  -- judged by the stronger judge a panel member escalated to (escalate: in prefclean.yml)
  coalesce(({{ escalation_targets(var('judges')) }})[member] = j.judge, false) as escalated,
  j.error as error,
  r.error as swapped_error,
  j.raw as raw,
  j.cached as cached,
  coalesce(j.prompt_tokens, 0) + coalesce(r.prompt_tokens, 0) as prompt_tokens,
  coalesce(j.completion_tokens, 0) + coalesce(r.completion_tokens, 0) as completion_tokens,
  j.latency_ms as latency_ms
from per_judge
