-- Every pair judged by the panel of judges (UltraFeedback: a 1-5 rating and a rationale per response),
-- and judged again with the two responses swapped: every pair when check_position_bias is true, only the
-- uncertain ones when it is 'uncertain' (see the bias_check macros), none when false.
-- Incremental on pair_id: a rebuild judges only new pairs, pairs whose judgment failed, and pairs judged by
-- anything else than the panel as it is now (--refresh-judgments: every pair, asking the judge again).
{{ config(materialized='incremental', unique_key='pair_id') }}
{%- set bias = bias_check_mode(var('check_position_bias'), var('bias_check_margin', 1)) %}
{#- what made a row's judgments: the resolved judges (engine, model, parameters, prompt templates), the aspect
    and the bias check. A change re-judges the row; the judgment cache answers what cannot have changed. -#}
{%- set panel_signature = (judge_identity(var('judges'), var('aspect')) ~ '|bias=' ~ bias_check_signature(bias))
                          | replace("'", "''") %}

with first_pass as materialized (
  select
    pair_id,
    system,
    instruction,
    chosen,
    rejected,
    generations,
    "order",
    {{ judge_panel('instruction', 'generations', judges=var('judges'), aspect=var('aspect')) }} as judgments
  from {{ ref('shuffled_pairs') }}
  {% if is_incremental() and not var('refresh_judgments', false) %}
  where pair_id not in (
    select pair_id from {{ this }}
    where judged_with = '{{ panel_signature }}'
      and {{ judgments_ok('judgments') }}
      and {{ bias_check_done('judgments', 'judgments_reversed', bias) }}
  )
  {% endif %}
),
{#- the swapped pass in its own CTE over only the rows that need it, so the judge is never called for the
    others (a CASE around the call would leave that to the engine's vectorized execution) -#}
swapped as (
  {% if bias.mode == 'off' -%}
  select null::varchar as pair_id, null::{{ judgment_type() }}[] as judgments_reversed where false
  {%- else -%}
  select
    f.pair_id,
    {{ judge_panel('p.instruction', 'f.generations', judges=var('judges'), aspect=var('aspect'), reverse=true) }}
      as judgments_reversed
  from first_pass f join {{ ref('shuffled_pairs') }} p using (pair_id)
  {% if bias.mode == 'uncertain' %}where {{ bias_check_needed('f.judgments', bias) }}{% endif %}
  {%- endif %}
)
select
  f.*,
  s.judgments_reversed,
  '{{ panel_signature }}' as judged_with
from first_pass f
left join swapped s using (pair_id)
