{#
  shuffle_pair(chosen, rejected, key, seed)

  Puts the two responses into `generations` in a pseudo-random order and records that order in `order`
  (['chosen', 'rejected'] or the reverse), so a judge cannot learn where the good answer sits.
  The coin is md5(key || '#' || seed): deterministic for a seed, about 50/50, and independent of row
  order and of DuckDB's threads (no random(), no row_number()).
  It is the parity of md5_number_lower(key || '#' || seed), read as the 18th hex digit of md5(): DuckDB's
  md5_number_lower is digest bytes 9-16 little-endian, so its lowest bit is the low bit of byte 9. Same coin,
  a fifth of the cost (md5_number_lower goes through a BIT string).
#}
{% macro shuffle_pair(chosen, rejected, key='pair_id', seed=var('shuffle_seed', 42)) -%}
  {%- set even = "substr(md5(" ~ key ~ " || '#" ~ seed ~ "'), 18, 1) in ('0', '2', '4', '6', '8', 'a', 'c', 'e')" %}
  case when {{ even }}
       then [{{ chosen }}, {{ rejected }}] else [{{ rejected }}, {{ chosen }}] end as generations,
  case when {{ even }}
       then ['chosen', 'rejected'] else ['rejected', 'chosen'] end as "order"
{%- endmacro %}

{#
  pair_id(columns): a stable id for a pair, the md5 of its text. Changed text gives a new id, so an
  incremental model never keeps a judgment of old text.
#}
{% macro pair_id(columns) -%}
  md5({{ pair_text(columns) }})
{%- endmacro %}

{#
  pair_text(columns): the text that pair_id hashes, one field after another, each as its length in bytes, ':'
  and the field (NULL as ''). Length prefixes make it injective: two different pairs never give one text,
  whatever their fields hold (a separator character could sit inside a field and shift the boundary).
#}
{% macro pair_text(columns) -%}
  concat({% for c in columns %}strlen(coalesce({{ c }}, '')), ':', coalesce({{ c }}, ''){{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{#
  pair_hash(columns): a cheap 64-bit hash of the same fields (NULL as ''), equal for equal pairs; it finds the
  rows that may repeat, not an id (it can collide). Hashing the fields one by one builds no joined text,
  which cost a third of stg_pairs' time.
#}
{% macro pair_hash(columns) -%}
  hash({% for c in columns %}coalesce({{ c }}, ''){{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}
