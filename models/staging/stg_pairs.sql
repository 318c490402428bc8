-- One row per distinct pair, with a stable id. `question` is renamed `instruction` at the source.
-- De-duplication: a cheap 64-bit hash of the same text finds the few rows that may repeat, and only those go
-- through the window (moving every row's text through it cost as much as the rest of the model). Rows with
-- one pair_id have one text, so one hash: the result is the same as a window over all rows.
{{ config(materialized='table') }}

with pairs as not materialized (
  select
    {{ pair_id(['system', 'instruction', 'chosen', 'rejected']) }} as pair_id,
    coalesce(system, '') as system,
    instruction,
    chosen,
    rejected,
    hash({{ pair_text(['system', 'instruction', 'chosen', 'rejected']) }}) as text_hash
  from {{ source(var('source', 'orca_sample')) }}
  where instruction is not null and chosen is not null and rejected is not null
),
repeated as (
  select text_hash from pairs group by text_hash having count(*) > 1
)

select * exclude (text_hash) from pairs where text_hash not in (select text_hash from repeated)
union all
select * exclude (text_hash) from pairs where text_hash in (select text_hash from repeated)
qualify row_number() over (partition by pair_id order by instruction) = 1
