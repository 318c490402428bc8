-- Every pair judged by the panel of judges (UltraFeedback: a 1-5 rating and a rationale per response),
-- and, when check_position_bias is on, judged again with the two responses swapped.
-- Incremental on pair_id: a rebuild judges only new pairs and pairs whose judgment failed.
{{ config(materialized='incremental', unique_key='pair_id') }}
{#- which panel and aspect judged a row: changing them re-judges it (the judgment cache still answers what it can) -#}
{%- set panel_signature = (var('judge_override', none) or var('judges') | join(',')) ~ '|' ~ var('aspect') ~ '|'
                          ~ var('check_position_bias') %}

select
  pair_id,
  system,
  instruction,
  chosen,
  rejected,
  generations,
  "order",
  {{ judge_panel('instruction', 'generations', judges=var('judges'), aspect=var('aspect')) }} as judgments,
  {% if var('check_position_bias') -%}
  {{ judge_panel('instruction', 'generations', judges=var('judges'), aspect=var('aspect'), reverse=true) }}
  {%- else -%}
  NULL::{{ judgment_type() }}[]
  {%- endif %} as judgments_reversed,
  '{{ panel_signature }}' as judged_with
from {{ ref('shuffled_pairs') }}
{% if is_incremental() %}
where pair_id not in (
  select pair_id from {{ this }}
  where judged_with = '{{ panel_signature }}'
    and {{ judgments_ok('judgments') }}
  {% if var('check_position_bias') %}and judgments_reversed is not null and {{ judgments_ok('judgments_reversed') }}{% endif %}
)
{% endif %}
