-- Source rows that do not fit the source's format, each with its reason; they are not judged.
{{ config(materialized='table', excluded=true) }}  {# the run summary counts these by reason #}
select r.source_row, r.excluded_reason as reason, o.original
from {{ ref('stg_rows') }} r
join {{ format_originals(var('source')) }} o using (source_row)
where r.excluded_reason is not null
order by r.source_row
