-- Every response graded by each judge of the panel against the rubric (Prometheus absolute grading: feedback
-- and a 1-5 score), shown the conversation turn by turn. Incremental on pair_id: a rebuild grades only new
-- responses, failed ones, and ones graded by anything else than the panel and rubric as they are now.
{{ config(materialized='incremental', unique_key='pair_id') }}
{%- set panel_signature = judge_identity(var('judges'), var('rubric'), 'prometheus-absolute') | replace("'", "''") %}

select
  pair_id,
  [{% for j in var('judges') %}{{ judge_absolute('conversation', 'response', rubric=var('rubric'), judge=j) }}{{ ", " if not loop.last }}{% endfor %}] as judgments,
  '{{ panel_signature }}' as judged_with
from {{ ref('stg_responses') }}
{% if is_incremental() and not var('refresh_judgments', false) %}
where pair_id not in (
  select pair_id from {{ this }} where judged_with = '{{ panel_signature }}' and {{ judgments_ok('judgments') }}
)
{% endif %}
