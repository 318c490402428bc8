-- The cleaned dataset in its own format: every source row whose response was kept, exactly as it was read
-- (same columns, nesting and values), in source order. `prefclean_judgment` holds the score, decision and
-- reason: file exports leave it out unless the export sets `with_judgments: true`. For a JSON-lines source,
-- `prefclean_source_line` is the row's line as the file holds it: a JSONL export writes it, byte for byte.
{{ config(materialized='table') }}
{%- set lines = format_lines(var('source')) %}

with kept as (
  select
    r.source_row as __prefclean_row,
    {'score': d.score, 'decision': d.decision, 'reason': d.reason} as __prefclean_judgment,
    {%- if lines %}
    l.line as __prefclean_line,
    {%- endif %}
    unnest(o.original)
  from {{ ref('stg_rows') }} r
  join {{ ref('response_decisions') }} d using (pair_id)
  join {{ format_originals(var('source')) }} o using (source_row)
  {%- if lines %}
  join {{ lines }} l using (source_row)
  {%- endif %}
  where d.decision = 'keep'
)
select * exclude (__prefclean_row, __prefclean_judgment{% if lines %}, __prefclean_line{% endif %}),
  __prefclean_judgment as prefclean_judgment{% if lines %}, __prefclean_line as prefclean_source_line{% endif %}
from kept
order by __prefclean_row
