-- The cleaned dataset in its own format: every kept source row exactly as it was read (same columns, nesting
-- and values), flipped rows with their two responses exchanged, in source order. `prefclean_judgment` holds
-- the ratings, decision and reason: file exports leave it out unless the export sets `with_judgments: true`.
-- For a JSON-lines source, `prefclean_source_line` is the row's line as the file holds it (a flipped row: the
-- same keys in the same order, the responses exchanged): a JSONL export writes these lines, so kept rows come
-- out byte for byte.
{{ config(materialized='table') }}
{%- set swap = format_swap(var('source')) %}
{%- set lines = format_lines(var('source')) %}

with kept as (
  select
    r.source_row as __prefclean_row,
    d.decision as __prefclean_decision,
    {
      'chosen_rating': case when d.decision = 'flip' then d.rejected_rating else d.chosen_rating end,
      'rejected_rating': case when d.decision = 'flip' then d.chosen_rating else d.rejected_rating end,
      'decision': d.decision,
      'reason': d.reason
    } as __prefclean_judgment,
    {%- if lines %}
    case when d.decision = 'flip' then {{ format_flipped_line(var('source'), 'l.line') }} else l.line end
      as __prefclean_line,
    {%- endif %}
    unnest(o.original)
  from {{ ref('stg_rows') }} r
  join {{ ref('pair_decisions') }} d using (pair_id)
  join {{ format_originals(var('source')) }} o using (source_row)
  {%- if lines %}
  join {{ lines }} l using (source_row)
  {%- endif %}
  where d.decision in ('keep', 'flip')
)
select
  * exclude (__prefclean_row, __prefclean_decision, __prefclean_judgment{% if lines %}, __prefclean_line{% endif %})
  {%- if swap %} replace (
    {%- for a, b in swap %}
    case when __prefclean_decision = 'flip' then "{{ b }}" else "{{ a }}" end as "{{ a }}",
    case when __prefclean_decision = 'flip' then "{{ a }}" else "{{ b }}" end as "{{ b }}"{{ "," if not loop.last }}
    {%- endfor %}
  ){% endif %},
  __prefclean_judgment as prefclean_judgment
  {%- if lines %},
  __prefclean_line as prefclean_source_line
  {%- endif %}
from kept
order by __prefclean_row
