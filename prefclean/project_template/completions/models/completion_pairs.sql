-- The audit table: every prompt once, its completions' ratings (the panel's mean per completion) and the pair
-- built from them, as UltraFeedback was binarized: `chosen` is the best-rated completion (the first of equals),
-- `rejected` one of the completions rated at least min_margin lower, picked by a seeded coin (md5 of the
-- prompt's id and shuffle_seed: reproducible, independent of row order).
-- Decisions: judge_failed (a rating is missing), all_poor (the best is rated <= poor_max), no_lower_rated (no
-- completion is min_margin below the best) -> drop; binarized -> keep.
{{ config(materialized='table', audit=true) }}

with rated as (
  select
    s.pair_id, s.system, s.instruction, s.messages, s.responses,
    list_transform(range(1, len(s.responses) + 1),
                   lambda i: list_avg(list_transform(j.judgments, lambda x: x.ratings[i]))) as ratings,
    coalesce(list_bool_or(list_transform(j.judgments, lambda x: x.error is not null or x.ratings is null
             or len(x.ratings) <> len(s.responses) or list_bool_or(list_transform(x.ratings, lambda r: r is null)))),
             true) as failed,
    list_transform(j.judgments, lambda x: x.raw) as raw_answers,
    list_sum(list_transform(j.judgments, lambda x: coalesce(x.prompt_tokens, 0))) as prompt_tokens,
    list_sum(list_transform(j.judgments, lambda x: coalesce(x.completion_tokens, 0))) as completion_tokens
  from {{ ref('stg_prompts') }} s
  left join {{ ref('judged_completions') }} j using (pair_id)
),
paired as (
  select
    *,
    list_position(ratings, list_max(ratings)) as chosen_index,
    list_filter(range(1, len(responses) + 1),
                lambda i: ratings[i] <= list_max(ratings) - {{ var('min_margin') }}) as lower
  from rated
)
select
  pair_id, system, instruction, messages, responses, ratings, failed, raw_answers, prompt_tokens, completion_tokens,
  chosen_index,
  case when len(lower) > 0 then lower[1 + (md5_number_lower(pair_id || '#{{ var('shuffle_seed') }}') % len(lower))::integer]
  end as rejected_index,
  case when failed then 'drop' when list_max(ratings) <= {{ var('poor_max') }} then 'drop'
       when len(lower) = 0 then 'drop' else 'keep' end as decision,
  case when failed then 'judge_failed' when list_max(ratings) <= {{ var('poor_max') }} then 'all_poor'
       when len(lower) = 0 then 'no_lower_rated' else 'binarized' end as reason
from paired
