-- One row per distinct pair, with a stable id. `question` is renamed `instruction` at the source.
-- Rows that fail the checks (a NULL or empty instruction/chosen/rejected) and repeated pairs are not kept here:
-- excluded_rows lists each with its reason, so every source row is a pair or an excluded row.
-- `source_row` is the row's position in the source (1-based), numbered before any filter (macro numbered_rows).
-- De-duplication: a cheap 64-bit hash of the same text finds the few rows that may repeat, and only those go
-- through the window (moving every row's text through it cost as much as the rest of the model). Rows with
-- one pair_id have one text, so one hash: the result is the same as a window over all rows. Of repeated rows
-- the first in the source is kept.
{{ config(materialized='table',
          source_columns={'system': 'text', 'instruction': 'text', 'chosen': 'text', 'rejected': 'text'}) }}
{%- set fields = ['system', 'instruction', 'chosen', 'rejected'] %}
{%- set required = ['instruction', 'chosen', 'rejected'] %}

with pairs as not materialized (
  select
    {{ pair_id(fields) }} as pair_id,
    coalesce(system, '') as system,
    instruction,
    chosen,
    rejected,
    source_row,
    {{ pair_hash(fields) }} as text_hash
  from {{ numbered_rows(source(var('source', 'orca_sample'))) }}
  where {{ row_passes(required=required, nonempty=required) }}
),
repeated as (
  select text_hash from pairs group by text_hash having count(*) > 1
)

select * exclude (text_hash) from pairs where text_hash not in (select text_hash from repeated)
union all
select * exclude (text_hash) from pairs where text_hash in (select text_hash from repeated)
qualify row_number() over (partition by pair_id order by source_row) = 1
