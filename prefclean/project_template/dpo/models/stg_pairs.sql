-- One row per distinct pair among the rows that fit their format: rows with the same text share one judgment
-- (source_rows says how many), and cleaned_rows gives each of them the pair's decision.
{{ config(materialized='table') }}
select
  pair_id,
  any_value(system) as system,
  any_value(instruction) as instruction,
  any_value(messages) as messages,
  any_value(chosen) as chosen,
  any_value(rejected) as rejected,
  count(*) as source_rows
from {{ ref('stg_rows') }}
where excluded_reason is null
group by pair_id
