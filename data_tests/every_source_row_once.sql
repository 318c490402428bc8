-- Each source row is exactly one pair (stg_pairs) or one excluded row (excluded_rows): a failing row is a
-- position missing from both, or counted twice. It checks that both models number the source the same way.
-- A warning: after `--select` of only one of the two, the other may stand from an earlier build.
{{ config(severity='warn') }}
with seen as (
  select source_row from {{ ref('stg_pairs') }}
  union all
  select source_row from {{ ref('excluded_rows') }}
),
expected as (
  select range + 1 as source_row from range((select count(*) from {{ source(var('source', 'orca_sample')) }}))
)
select coalesce(e.source_row, s.source_row) as source_row, count(s.source_row) as times_seen
from expected e
full outer join seen s using (source_row)
group by all
having count(s.source_row) <> 1 or bool_or(e.source_row is null)
