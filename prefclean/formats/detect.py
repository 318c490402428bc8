"""Which format a source is in, from its columns, their types and its first rows."""

from __future__ import annotations

import duckdb

from . import FormatError, all_formats

SAMPLE_ROWS = 20


def describe(con: duckdb.DuckDBPyConnection, select_sql: str) -> tuple[dict[str, str], list[dict]]:
    """({column: DuckDB type}, the first rows as dicts) of a query."""
    cur = con.execute(f"select * from ({select_sql}) limit {SAMPLE_ROWS}")
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    types = {r[0]: r[1] for r in con.execute(f"describe select * from ({select_sql})").fetchall()}
    return types, rows


# What each --kind accepts: N completions per prompt become preference pairs.
KIND_FORMATS = {"dpo": ("dpo", "completions"), "sft": ("sft",), "completions": ("completions",)}


def _of_kind(fmt, kind: str | None) -> bool:
    return kind is None or fmt.kind in KIND_FORMATS.get(kind, (kind,))


def candidates(columns: dict[str, str], rows: list[dict], kind: str | None = None) -> list[str]:
    """Every format that fits, in registration order (most specific first within a kind)."""
    return [f.name for f in all_formats().values() if _of_kind(f, kind) and f.matches(columns, rows)]


def detect(columns: dict[str, str], rows: list[dict], kind: str | None = None, *, where: str = "the source") -> str:
    """The one format these columns fit, or an error naming the columns seen."""
    fits = candidates(columns, rows, kind)
    if fits:
        return fits[0]
    seen = ", ".join(f"{c} {t}" for c, t in columns.items()) or "no columns"
    wanted = f"a {kind} format" if kind else "a known format"
    raise FormatError(f"{where} is not in {wanted}: it has columns {seen}. Name one with `format:` "
                      f"(one of {', '.join(n for n, f in all_formats().items() if _of_kind(f, kind))}), "
                      "or rename columns with `columns:`")
