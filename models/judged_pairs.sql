-- Every pair judged by the panel of judges (UltraFeedback: a 1-5 rating and a rationale per response),
-- and judged again with the two responses swapped: every pair when check_position_bias is true, none when false,
-- and when it is 'uncertain' only the close pairs the first pass would keep whose winner sat where the judge's
-- position tilt could have put it (see the bias_check macros).
-- A panel member whose judge has `escalate:` in prefclean.yml is asked first, and its stronger judge only about
-- the pairs it is unsure of (the escalation macros); the swapped pass asks whichever judge made the judgment.
-- With the check on every pair (and no escalation), both orders go to the judge in one call, each pair's
-- swapped order right after it: a serial judge such as llama.cpp reuses what the two prompts share.
-- Incremental on pair_id: a rebuild judges only new pairs, pairs whose judgment failed, and pairs judged by
-- anything else than the panel as it is now (--refresh-judgments: every pair, asking the judge again).
{{ config(materialized='incremental', unique_key='pair_id') }}
{%- set bias = bias_check_mode(var('check_position_bias'), var('bias_check_margin', 1),
                               direction=var('bias_check_direction', 'auto'), keep=decision_settings()) %}
{%- set escalation = judge_escalation(var('judges')) %}
{%- set escalates = escalation | selectattr('to') | list | length > 0 %}
{#- what made a row's judgments: the resolved judges (engine, model, parameters, prompt templates, escalation),
    the aspect and the bias check. A change re-judges the row; the judgment cache answers what cannot have changed. -#}
{%- set panel_signature = (judge_identity(var('judges'), var('aspect')) ~ '|bias=' ~ bias_check_signature(bias))
                          | replace("'", "''") %}

{%- set needs_judging -%}
  {% if is_incremental() and not var('refresh_judgments', false) %}
  where pair_id not in (
    select pair_id from {{ this }}
    where judged_with = '{{ panel_signature }}'
      and {{ judgments_ok('judgments') }}
      and {{ bias_check_done('judgments', 'judgments_reversed', bias) }}
  )
  {% endif %}
{%- endset %}
{%- set interleaved = bias.mode == 'all' and not escalates %}

{% if interleaved -%}
{#- both orders in one judge call, each pair's swapped order right after it (unnest keeps the two adjacent):
    a judge that answers one request at a time (llama.cpp) then evaluates the swapped prompt only past
    everything before the texts, instead of after another pair's prompt -#}
with both_orders as materialized (
  select
    pair_id,
    system,
    instruction,
    chosen,
    rejected,
    generations,
    "order",
    is_swapped,
    {{ judge_panel('instruction', 'if(is_swapped, list_reverse(generations), generations)',
                   judges=var('judges'), aspect=var('aspect')) }} as judgments
  from (select *, unnest([false, true]) as is_swapped from {{ ref('shuffled_pairs') }} {{ needs_judging }})
),
judged as (select * exclude (is_swapped) from both_orders where not is_swapped),
swapped as (select pair_id, judgments as judgments_reversed from both_orders where is_swapped)
{%- else -%}
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
  {{ needs_judging }}
),
{% if escalates -%}
{#- each escalating member's stronger judge, in its own CTE over only the unsure rows (never a CASE around a call) -#}
{% for e in escalation if e.to %}
escalated_{{ e.position }} as (
  select f.pair_id, {{ judge('p.instruction', 'f.generations', aspect=var('aspect'), judge=e.to) }} as j
  from first_pass f join {{ ref('shuffled_pairs') }} p using (pair_id)
  where {{ escalation_needed('f.judgments[' ~ e.position ~ ']', e.margin) }}
),
{% endfor %}
judged as materialized (
  select f.* replace ([
    {%- for e in escalation %}
    {% if e.to %}coalesce(x{{ e.position }}.j, f.judgments[{{ e.position }}]){% else %}f.judgments[{{ e.position }}]{% endif %}{{ "," if not loop.last }}
    {%- endfor %}] as judgments)
  from first_pass f
  {% for e in escalation if e.to %}left join escalated_{{ e.position }} x{{ e.position }} using (pair_id)
  {% endfor %}
),
{%- else %}
judged as (select * from first_pass),
{%- endif %}
{#- the swapped pass in its own CTE over only the rows that need it, so the judge is never called for the
    others (a CASE around the call would leave that to the engine's vectorized execution) -#}
{%- set recheck = "f.pair_id in (select pair_id from checks where bias_check = 'swapped')"
                  if bias.mode == 'uncertain' else 'true' %}
{% if bias.mode == 'uncertain' -%}
{%- if bias.direction == 'auto' %}
{#- each judge's position tilt (bias_tilt), from this build's first passes and those of the rows already judged
    under this signature (a small incremental batch alone says little) -#}
tilt_sample as (
  select judgments from judged
  {%- if is_incremental() %}
  union all
  select judgments from {{ this }}
  where judged_with = '{{ panel_signature }}' and pair_id not in (select pair_id from judged)
    and pair_id in (select pair_id from {{ ref('shuffled_pairs') }})
  {%- endif %}
),
tilts as (select list(judge) as judges, list(favoured) as favoured from ({{ bias_tilt('tilt_sample') }})),
{%- endif %}
{#- why each pair is or is not judged swapped (bias_check_status): only 'swapped' ones are -#}
checks as materialized (
  select f.pair_id,
    {% if bias.direction == 'auto' %}{{ bias_check_status('f.judgments', 'f."order"', bias, 't.judges', 't.favoured') }}
    {%- else %}{{ bias_check_status('f.judgments', 'f."order"', bias) }}{% endif %} as bias_check
  from judged f{% if bias.direction == 'auto' %} cross join tilts t{% endif %}
),
{%- endif %}
{% if bias.mode == 'off' %}
swapped as (
  select null::varchar as pair_id, null::{{ judgment_type() }}[] as judgments_reversed where false
)
{%- elif not escalates %}
swapped as (
  select
    f.pair_id,
    {{ judge_panel('p.instruction', 'f.generations', judges=var('judges'), aspect=var('aspect'), reverse=true) }}
      as judgments_reversed
  from judged f join {{ ref('shuffled_pairs') }} p using (pair_id)
  where {{ recheck }}
)
{%- else %}
{#- with escalation, one CTE per panel member: a pair's swapped judgment comes from the judge that made its first -#}
{% for e in escalation %}
swapped_{{ e.position }} as (
  select f.pair_id, {{ judge('p.instruction', 'f.generations', aspect=var('aspect'), judge=e.judge, reverse=true) }} as j
  from judged f join {{ ref('shuffled_pairs') }} p using (pair_id)
  where {{ recheck }}{% if e.to %} and f.judgments[{{ e.position }}].judge is distinct from '{{ e.to }}'{% endif %}
  {%- if e.to %}
  union all
  select f.pair_id, {{ judge('p.instruction', 'f.generations', aspect=var('aspect'), judge=e.to, reverse=true) }} as j
  from judged f join {{ ref('shuffled_pairs') }} p using (pair_id)
  where {{ recheck }} and f.judgments[{{ e.position }}].judge = '{{ e.to }}'
  {%- endif %}
),
{% endfor %}
swapped as (
  select f.pair_id, [{% for e in escalation %}s{{ e.position }}.j{{ ", " if not loop.last }}{% endfor %}] as judgments_reversed
  from judged f
  {% for e in escalation %}join swapped_{{ e.position }} s{{ e.position }} using (pair_id)
  {% endfor %}
)
{%- endif %}
{%- endif %}
select
  f.*,
  s.judgments_reversed,
  '{{ panel_signature }}' as judged_with
from judged f
left join swapped s using (pair_id)
