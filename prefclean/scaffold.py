"""`prefclean init`: a new project that builds as it is."""

from __future__ import annotations

from pathlib import Path

from .errors import PrefcleanError

_PROJECT = """\
name: {name}
warehouse: target/prefclean.duckdb

vars:
  shuffle_seed: 42

sources:
  pairs:
    type: inline
    columns: {{question: instruction}}
    rows:
      - {{system: "", question: "What is 2 + 2?", chosen: "2 + 2 = 4.", rejected: "2 + 2 = 5."}}
      - {{system: "", question: "Name the capital of France.", chosen: "Paris.", rejected: "Lyon."}}
"""

_MACRO = """\
{# A seeded, row-order-independent shuffle of the two responses. #}
{% macro shuffle_pair(chosen, rejected, key, seed) -%}
  case when md5_number_lower({{ key }} || '#{{ seed }}') % 2 = 0
       then [{{ chosen }}, {{ rejected }}] else [{{ rejected }}, {{ chosen }}] end as generations,
  case when md5_number_lower({{ key }} || '#{{ seed }}') % 2 = 0
       then ['chosen', 'rejected'] else ['rejected', 'chosen'] end as "order"
{%- endmacro %}
"""

_STG = """\
{{ config(materialized='table') }}
select md5(concat_ws('\\x1f', system, instruction, chosen, rejected)) as pair_id, *
from {{ source('pairs') }}
"""

_SHUFFLED = """\
{{ config(materialized='table') }}
select pair_id, system, instruction, chosen, rejected,
       {{ shuffle_pair('chosen', 'rejected', 'pair_id', var('shuffle_seed')) }}
from {{ ref('stg_pairs') }}
"""

_UDF = '''\
"""Project UDFs: functions in this folder become DuckDB functions usable in models."""

import pyarrow.compute as pc

from prefclean import udf


@udf(params=["VARCHAR"], returns="BIGINT")
def word_count(texts):
    return pc.list_value_length(pc.utf8_split_whitespace(texts))
'''


def scaffold(directory: Path, name: str | None = None) -> Path:
    directory = directory.resolve()
    if (directory / "prefclean.yml").exists():
        raise PrefcleanError(f"{directory} already has a prefclean.yml")
    name = name or directory.name.replace("-", "_")
    files = {
        "prefclean.yml": _PROJECT.format(name=name),
        "macros/shuffle.sql": _MACRO,
        "models/stg_pairs.sql": _STG,
        "models/shuffled_pairs.sql": _SHUFFLED,
        "udfs/text.py": _UDF,
        ".gitignore": "target/\n",
    }
    existing = [rel for rel in files if (directory / rel).exists()]
    if existing:  # never overwrite a user's files
        raise PrefcleanError(f"{directory / existing[0]} already exists; init a new or empty folder")
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory
