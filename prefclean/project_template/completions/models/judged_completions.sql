-- Every prompt's completions rated together by each judge of the panel (UltraFeedback: a 1-5 rating and a
-- rationale per completion). Incremental on pair_id: a rebuild judges only new prompts, failed ones, and ones
-- judged by anything else than the panel as it is now.
{{ config(materialized='incremental', unique_key='pair_id') }}
{%- set panel_signature = judge_identity(var('judges'), var('aspect')) | replace("'", "''") %}

select
  pair_id,
  {{ judge_panel('conversation', 'responses', judges=var('judges'), aspect=var('aspect')) }} as judgments,
  '{{ panel_signature }}' as judged_with
from {{ ref('stg_prompts') }}
{% if is_incremental() and not var('refresh_judgments', false) %}
where pair_id not in (
  select pair_id from {{ this }} where judged_with = '{{ panel_signature }}' and {{ judgments_ok('judgments') }}
)
{% endif %}
