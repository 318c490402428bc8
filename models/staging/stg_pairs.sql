-- One row per distinct pair, with a stable id. `question` is renamed `instruction` at the source.
-- De-duplication: a cheap 64-bit hash of the same text finds the few rows that may repeat, and only those go
-- through the window (moving every row's text through it cost as much as the rest of the model). Rows with
-- one pair_id have one text, so one hash: the result is the same as a window over all rows.
{{ config(materialized='table') }}
{%- set text = pair_text(['system', 'instruction', 'chosen', 'rejected']) %}
{%- set complete = "instruction is not null and chosen is not null and rejected is not null" %}

with repeated as (
  select hash({{ text }}) as text_hash
  from {{ source(var('source', 'orca_sample')) }}
  where {{ complete }}
  group by text_hash
  having count(*) > 1
)

select
  {{ pair_id(['system', 'instruction', 'chosen', 'rejected']) }} as pair_id,
  coalesce(system, '') as system,
  instruction,
  chosen,
  rejected
from {{ source(var('source', 'orca_sample')) }}
where {{ complete }} and hash({{ text }}) not in (select text_hash from repeated)

union all

select
  {{ pair_id(['system', 'instruction', 'chosen', 'rejected']) }} as pair_id,
  coalesce(system, '') as system,
  instruction,
  chosen,
  rejected
from {{ source(var('source', 'orca_sample')) }}
where {{ complete }} and hash({{ text }}) in (select text_hash from repeated)
qualify row_number() over (partition by pair_id order by instruction) = 1
