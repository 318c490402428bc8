-- The cleaned dataset in its own format: every source row whose response was kept, exactly as it was read
-- (same columns, nesting and values), in source order. `prefclean_judgment` holds the score, decision and
-- reason: file exports leave it out unless the export sets `with_judgments: true`.
{{ config(materialized='table') }}

with kept as (
  select
    r.source_row as __prefclean_row,
    {'score': d.score, 'decision': d.decision, 'reason': d.reason} as __prefclean_judgment,
    unnest(o.original)
  from {{ ref('stg_rows') }} r
  join {{ ref('response_decisions') }} d using (pair_id)
  join {{ format_originals(var('source')) }} o using (source_row)
  where d.decision = 'keep'
)
select * exclude (__prefclean_row, __prefclean_judgment), __prefclean_judgment as prefclean_judgment
from kept
order by __prefclean_row
