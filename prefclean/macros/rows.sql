{#
  Every source row accounted for: a staging model keeps a row, or an "excluded" model lists it with a reason.

  The convention (read by the run summary): a staging model reads its source through numbered_rows(), so
  each kept row carries `source_row`, the row's 1-based position in the source (for a JSONL file without
  blank lines, its line number); an excluded model is a model with config(excluded=true) and a `reason`
  column, built with excluded_rows() over the same source, the same checks and the kept model.
  The summary then reports rows_in (rows of the sources upstream of the audit model), the pairs, and the
  excluded rows by reason; rows_in = pairs + sum(excluded) unless something was lost, which it says.

  Checks (the first that fails names the reason; a format adapter adds its own with `checks` or `reason`):
    <reason>      `reason`: a SQL expression giving the row's reason or NULL (format_rows()'s `excluded_reason`)
    null_field    a `required` column is NULL
    empty_field   a `nonempty` column is '' or only whitespace
    <reason>      each {'reason': ..., 'when': SQL condition, 'field': column or none} of `checks`
    duplicate     (excluded_rows only) the row's key equals a kept row's key: `duplicate_of` names that row
    unexplained   (excluded_rows only) the kept model dropped the row for none of these: a bug to report
#}

{# The relation's rows, numbered in source order (1-based). The number is taken before any filter, so it is
   the same in every model that reads the source (DuckDB keeps insertion order). #}
{% macro numbered_rows(relation) -%}
  (select row_number() over () as source_row, * from {{ relation }})
{%- endmacro %}

{# '' or only spaces, tabs and line breaks. Only a text whose first byte sorts before '!' can be blank: that cheap
   comparison spares nearly every row the trim, which copies the text (it doubled stg_pairs' time). #}
{% macro _blank(column) -%}
  ({{ column }} < '!' and trim({{ column }}, ' ' || chr(9) || chr(10) || chr(13)) = '')
{%- endmacro %}

{# A STRUCT(reason, field) naming the first check the row fails, or NULL when it passes them all. #}
{% macro row_exclusion(required=[], nonempty=[], checks=[], reason=none) -%}
  case
    {%- if reason %}
    when ({{ reason }}) is not null then {'reason': ({{ reason }})::varchar, 'field': null::varchar}
    {%- endif %}
    {%- for c in required %}
    when {{ c }} is null then {'reason': 'null_field', 'field': '{{ c }}'}
    {%- endfor %}
    {%- for c in nonempty %}
    when {{ _blank(c) }} then {'reason': 'empty_field', 'field': '{{ c }}'}
    {%- endfor %}
    {%- for c in checks %}
    when coalesce({{ c['when'] }}, false) then {'reason': '{{ c['reason'] }}', 'field': {{ "'" ~ c['field'] ~ "'" if c.get('field') else 'null::varchar' }}}
    {%- endfor %}
    else null
  end
{%- endmacro %}

{# The same checks as a filter that keeps the rows passing them (cheaper than building the STRUCT per row). #}
{% macro row_passes(required=[], nonempty=[], checks=[], reason=none) -%}
  (true
  {%- if reason %} and ({{ reason }}) is null{% endif %}
  {%- for c in required %} and {{ c }} is not null{% endfor %}
  {%- for c in nonempty %} and not {{ _blank(c) }}{% endfor %}
  {%- for c in checks %} and not coalesce({{ c['when'] }}, false){% endfor %})
{%- endmacro %}

{#
  excluded_rows(relation, kept, key, ...): the rows of `relation` that the model `kept` (a ref whose rows
  carry `source_row`) does not hold, one per row, with source_row, reason, field (the column at fault),
  duplicate_of (the kept row's source_row) and the columns in `fields`.
  `key` is the SQL expression over a source row that the kept model deduplicates on (its `key_column`).
  `numbered=false` when the relation has its own `source_row` already (format_rows() output does).
  Only the rows not kept are checked and keyed, so this costs one scan and a join on row numbers.
#}
{% macro excluded_rows(relation, kept, key, key_column='pair_id', fields=[], required=[], nonempty=[], checks=[],
                       reason=none, numbered=true) -%}
  with not_kept as (
    select * from {{ numbered_rows(relation) if numbered else relation }} as src
    anti join (select source_row from {{ kept }}) as k using (source_row)
  ),
  checked as (
    select *, {{ row_exclusion(required, nonempty, checks, reason) }} as __exclusion,
           case when {{ row_exclusion(required, nonempty, checks, reason) }} is null then {{ key }} end as __row_key
    from not_kept
  )
  select
    c.source_row,
    coalesce(c.__exclusion.reason, case when k.source_row is not null then 'duplicate' else 'unexplained' end) as reason,
    c.__exclusion.field as field,
    k.source_row as duplicate_of
    {%- for f in fields %}, c.{{ f }}{% endfor %}
  from checked as c
  left join {{ kept }} as k on k.{{ key_column }} = c.__row_key
  order by c.source_row
{%- endmacro %}
