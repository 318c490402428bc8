-- One row per distinct (conversation, response) among the rows that fit their format: rows with the same text
-- share one grade (source_rows says how many), and cleaned_rows gives each of them the response's decision.
{{ config(materialized='table') }}
select
  pair_id,
  any_value(system) as system,
  any_value(instruction) as instruction,
  any_value(messages) as messages,
  {{ conversation_prompt('any_value(messages)') }} as conversation,
  any_value(chosen) as response,
  count(*) as source_rows
from {{ ref('stg_rows') }}
where excluded_reason is null
group by pair_id
