-- Every pair judged by the panel of judges (UltraFeedback: a 1-5 rating and a rationale per response), shown
-- the conversation turn by turn, and, when check_position_bias is on, judged again with the responses swapped.
-- Incremental on pair_id: a rebuild judges only new pairs, pairs whose judgment failed, and pairs judged by
-- anything else than the panel as it is now (--refresh-judgments: every pair, asking the judge again).
{{ config(materialized='incremental', unique_key='pair_id') }}
{#- what made a row's judgments: the resolved judges (engine, model, parameters, prompt templates), the aspect
    and the bias check. A change re-judges the row; the judgment cache answers what cannot have changed. -#}
{%- set panel_signature = (judge_identity(var('judges'), var('aspect')) ~ '|bias=' ~ var('check_position_bias'))
                          | replace("'", "''") %}

select
  pair_id,
  generations,
  "order",
  {{ judge_panel('conversation', 'generations', judges=var('judges'), aspect=var('aspect')) }} as judgments,
  {% if var('check_position_bias') -%}
  {{ judge_panel('conversation', 'generations', judges=var('judges'), aspect=var('aspect'), reverse=true) }}
  {%- else -%}
  NULL::{{ judgment_type() }}[]
  {%- endif %} as judgments_reversed,
  '{{ panel_signature }}' as judged_with
from {{ ref('shuffled_pairs') }}
{% if is_incremental() and not var('refresh_judgments', false) %}
where pair_id not in (
  select pair_id from {{ this }}
  where judged_with = '{{ panel_signature }}'
    and {{ judgments_ok('judgments') }}
  {% if var('check_position_bias') %}and judgments_reversed is not null and {{ judgments_ok('judgments_reversed') }}{% endif %}
)
{% endif %}
