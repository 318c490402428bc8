{#
  shuffle_pair(chosen, rejected, key, seed)

  Puts the two responses into `generations` in a pseudo-random order and records that order in `order`
  (['chosen', 'rejected'] or the reverse), so a judge cannot learn where the good answer sits.
  The coin is md5(key || '#' || seed): deterministic for a seed, about 50/50, and independent of row
  order and of DuckDB's threads (no random(), no row_number()).
#}
{% macro shuffle_pair(chosen, rejected, key='pair_id', seed=var('shuffle_seed', 42)) -%}
  case when md5_number_lower({{ key }} || '#{{ seed }}') % 2 = 0
       then [{{ chosen }}, {{ rejected }}] else [{{ rejected }}, {{ chosen }}] end as generations,
  case when md5_number_lower({{ key }} || '#{{ seed }}') % 2 = 0
       then ['chosen', 'rejected'] else ['rejected', 'chosen'] end as "order"
{%- endmacro %}

{#
  pair_id(columns): a stable id for a pair, the md5 of its text. Changed text gives a new id, so an
  incremental model never keeps a judgment of old text.
#}
{% macro pair_id(columns) -%}
  md5(concat_ws(chr(31), {% for c in columns %}coalesce({{ c }}, ''){{ ", " if not loop.last }}{% endfor %}))
{%- endmacro %}
