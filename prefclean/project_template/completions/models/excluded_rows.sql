-- Source rows that do not fit the source's format, each with its reason; they are not judged.
{{ config(materialized='table', excluded=true) }}  {# the run summary counts these by reason #}
select source_row, excluded_reason as reason, original
from {{ ref('stg_rows') }}
where excluded_reason is not null
order by source_row
