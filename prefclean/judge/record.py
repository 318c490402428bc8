"""One judgment, defined once: the STRUCT the judge UDF returns per row and the row the judgment cache keeps.

Each field says its Arrow type, its SQL type, and whether it is part of the UDF's result and of the cache's
`judgments` table. `RESULT_TYPE`, `RESULT_SQL`, `CACHE_SCHEMA` and every row are derived from it, so the UDF,
the cache and the README cannot disagree. The call log (`calls` in the cache) is a record of the same kind.
The tables themselves are made by the cache's migrations (cache.py), whose steps stay as they were written;
tests check that the migrated tables have exactly these columns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from operator import attrgetter

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    arrow: pa.DataType
    sql: str
    result: bool  # in the STRUCT the judge UDF returns
    cached: bool  # a column of the cache's table


def column(arrow: pa.DataType, sql: str, *, result: bool = True, cached: bool = True, default=None):
    """A record field with its types (read back by `columns`)."""
    return dataclasses.field(default=default, metadata={"arrow": arrow, "sql": sql, "result": result,
                                                        "cached": cached})


def columns(record: type) -> tuple[Column, ...]:
    return tuple(Column(f.name, **f.metadata) for f in dataclasses.fields(record))


INTS, TEXTS = pa.list_(pa.int32()), pa.list_(pa.string())


@dataclass(slots=True)
class Judgment:
    """One row's judgment. Failures (`error` set) are returned but never cached: the next build retries them."""

    ratings: list | None = column(INTS, "INTEGER[]")  # one per generation; NULL where unparsed
    rationales: list | None = column(TEXTS, "VARCHAR[]")
    winner: int | None = column(pa.int32(), "INTEGER")  # 1-based index of the preferred generation
    judge: str | None = column(pa.string(), "VARCHAR")  # the judge's name in prefclean.yml
    model: str | None = column(pa.string(), "VARCHAR")  # as the server named it
    task: str | None = column(pa.string(), "VARCHAR")
    aspect: str | None = column(pa.string(), "VARCHAR")
    raw: str | None = column(pa.string(), "VARCHAR")  # the answer, for audit
    error: str | None = column(pa.string(), "VARCHAR", cached=False)
    prompt_tokens: int | None = column(pa.int32(), "INTEGER")
    completion_tokens: int | None = column(pa.int32(), "INTEGER")
    latency_ms: float | None = column(pa.float64(), "DOUBLE")
    cached: bool = column(pa.bool_(), "BOOLEAN", cached=False, default=False)  # answered by the cache
    attempts: int = column(pa.int32(), "INTEGER", cached=False, default=0)  # requests sent for it
    key: str | None = column(pa.string(), "VARCHAR")  # hash of judge identity and prompt: the cache's key
    engine: str | None = column(pa.string(), "VARCHAR", result=False)
    prompt_key: str | None = column(pa.string(), "VARCHAR", result=False)  # request_key of its prompt (keys.py)

    def result_row(self) -> dict:
        """The UDF's STRUCT value, as a dict for the JSON rows (jsonrows)."""
        return dict(zip(RESULT_NAMES, _result_values(self)))

    def cache_row(self) -> dict:
        return dict(zip(CACHE_NAMES, _cache_values(self)))


def logged(arrow: pa.DataType, sql: str):
    """A column of the call log (a table, no UDF result)."""
    return column(arrow, sql, result=False)


@dataclass(slots=True)
class Call:
    """One request in the call log: every attempt, failed or not."""

    key: str | None = logged(pa.string(), "VARCHAR")
    judge: str | None = logged(pa.string(), "VARCHAR")
    model: str | None = logged(pa.string(), "VARCHAR")
    status: str | None = logged(pa.string(), "VARCHAR")  # ok | unparsed | error
    error: str | None = logged(pa.string(), "VARCHAR")
    http_status: int | None = logged(pa.int32(), "INTEGER")
    latency_ms: float | None = logged(pa.float64(), "DOUBLE")
    prompt_tokens: int | None = logged(pa.int32(), "INTEGER")
    completion_tokens: int | None = logged(pa.int32(), "INTEGER")
    attempt: int | None = logged(pa.int32(), "INTEGER")
    cost_usd: float | None = logged(pa.float64(), "DOUBLE")  # at the judge's `price`; NULL without one


JUDGMENT_COLUMNS = columns(Judgment)
RESULT_NAMES = tuple(c.name for c in JUDGMENT_COLUMNS if c.result)
CACHE_NAMES = tuple(c.name for c in JUDGMENT_COLUMNS if c.cached)
_result_values, _cache_values = attrgetter(*RESULT_NAMES), attrgetter(*CACHE_NAMES)

RESULT_TYPE = pa.struct([(c.name, c.arrow) for c in JUDGMENT_COLUMNS if c.result])
RESULT_SQL = "STRUCT(" + ", ".join(f"{c.name} {c.sql}" for c in JUDGMENT_COLUMNS if c.result) + ")"
CACHE_SCHEMA = pa.schema([(c.name, c.arrow) for c in JUDGMENT_COLUMNS if c.cached])
CALL_SCHEMA = pa.schema([(c.name, c.arrow) for c in columns(Call)])


def from_cache(row: dict, **changes) -> Judgment:
    """A cached judgment (its `CACHE_NAMES` columns) as this call's: `changes` override, e.g. judge, aspect."""
    return Judgment(**{**row, **changes, "cached": True, "attempts": 0})


def from_cache_sql(overrides: tuple[str, ...] = ("judge", "task", "aspect")) -> str:
    """`from_cache` in SQL over the cache's table: the UDF's result columns of cached rows, the `overrides`
    given as parameters (in this order), so a batch's hits go from DuckDB to its result as Arrow, row-free."""
    fixed = {"cached": "true", "attempts": "0"}
    parts = []
    for c in JUDGMENT_COLUMNS:
        if not c.result:
            continue
        if c.name in overrides:
            parts.append(f"?::{c.sql} as {c.name}")
        elif c.name in fixed:
            parts.append(f"{fixed[c.name]}::{c.sql} as {c.name}")
        elif c.cached:
            parts.append(f"{c.name}::{c.sql} as {c.name}")
        else:
            parts.append(f"null::{c.sql} as {c.name}")
    return ", ".join(parts)
