-- One row per distinct pair, with a stable id. `question` is renamed `instruction` at the source.
{{ config(materialized='table') }}

select
  {{ pair_id(['system', 'instruction', 'chosen', 'rejected']) }} as pair_id,
  coalesce(system, '') as system,
  instruction,
  chosen,
  rejected
from {{ source(var('source', 'orca_sample')) }}
where instruction is not null and chosen is not null and rejected is not null
qualify row_number() over (partition by pair_id order by instruction) = 1
