-- One row per distinct prompt and completions among the rows that fit their format (source_rows says how many
-- rows share it).
{{ config(materialized='table') }}
select
  pair_id,
  any_value(system) as system,
  any_value(instruction) as instruction,
  any_value(messages) as messages,
  {{ conversation_prompt('any_value(messages)') }} as conversation,
  any_value(responses) as responses,
  count(*) as source_rows
from {{ ref('stg_rows') }}
where excluded_reason is null
group by pair_id
