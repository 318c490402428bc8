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
