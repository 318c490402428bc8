"""Property: for any source rows (NULLs, empty and blank strings, unicode, control characters incl. \\x1f,
digits and ':' that a length prefix uses, repeats), every row is a pair or an excluded row with the right
reason, and distinct pairs get distinct ids. The example's compiled staging models run on a local DuckDB."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from prefclean.compiler import Compiler
from prefclean.project import load_project
from prefclean.summary import rows_accounting

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("system", "instruction", "chosen", "rejected")
REQUIRED = ("instruction", "chosen", "rejected")
BLANK = " \t\n\r"

text = st.one_of(st.sampled_from(["", " ", "\t\n", "a", "1:a", "\x1f", "a\x1f", "1", ":"]),
                 st.text(alphabet=st.sampled_from("ab1:\x1f \n\x07é中😀"), max_size=6))
field = st.one_of(st.none(), text)
source_row = st.tuples(field, field, field, field)
# Two different pairs whose fields joined by \x1f read the same (one id under a separator encoding).
shifted_pair = st.tuples(text, text, text, text, text).map(
    lambda t: [(t[0], t[1], t[2] + "\x1f" + t[3], t[4]), (t[0], t[1] + "\x1f" + t[2], t[3], t[4])])
# A small pool of rows drawn several times: repeats are common.
rows_strategy = st.tuples(st.lists(source_row, min_size=1, max_size=5), shifted_pair).flatmap(
    lambda pool: st.lists(st.one_of(st.sampled_from(pool[0] + pool[1]), source_row), max_size=12))


@pytest.fixture(scope="module")
def staging_sql(tmp_path_factory):
    root = tmp_path_factory.mktemp("staging")
    (root / "prefclean.yml").write_text("name: p\nvars: {source: pairs}\nsources: {pairs: {type: inline, rows: []}}\n")
    shutil.copytree(REPO / "models" / "staging", root / "models" / "staging")
    shutil.copytree(REPO / "macros", root / "macros")
    compiler = Compiler(load_project(root))
    models = compiler.parse_all()
    return models, {name: models[name].compiled_sql for name in ("stg_pairs", "excluded_rows")}


def expected_reason(row, first_seen):
    values = dict(zip(FIELDS, row))
    for c in REQUIRED:
        if values[c] is None:
            return "null_field", c
    for c in REQUIRED:
        if values[c].strip(BLANK) == "":
            return "empty_field", c
    return "duplicate", None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy)
def test_every_source_row_is_a_pair_or_excluded_and_distinct_pairs_get_distinct_ids(staging_sql, rows):
    models, sql = staging_sql
    con = duckdb.connect()
    con.execute("create schema sources; create table sources.pairs (system varchar, instruction varchar, "
                "chosen varchar, rejected varchar)")
    if rows:
        con.executemany("insert into sources.pairs values (?, ?, ?, ?)", rows)
    con.execute(f"create table main.stg_pairs as {sql['stg_pairs']}")
    con.execute(f"create table main.excluded_rows as {sql['excluded_rows']}")

    kept = con.execute("select source_row, pair_id, system, instruction, chosen, rejected from stg_pairs").fetchall()
    excluded = con.execute("select source_row, reason, field, duplicate_of from excluded_rows").fetchall()
    accounting = rows_accounting(con, "stg_pairs", models, len(kept))
    assert accounting["rows_in"] == len(rows) == len(kept) + sum(accounting["excluded"].values())
    assert accounting["unaccounted"] == 0
    assert sorted(r[0] for r in kept + [e[:1] for e in excluded]) == list(range(1, len(rows) + 1))

    first: dict[tuple, int] = {}
    want_kept, want_excluded = set(), set()
    for number, row in enumerate(rows, 1):
        pair = ("" if row[0] is None else row[0], *row[1:])
        reason, column = expected_reason(row, first)
        if reason != "duplicate":
            want_excluded.add((number, reason, column, None))
        elif pair in first:
            want_excluded.add((number, "duplicate", None, first[pair]))
        else:
            first[pair] = number
            want_kept.add((number, *pair))
    assert {(r[0], *r[2:]) for r in kept} == want_kept
    assert set(excluded) == want_excluded
    assert len({r[1] for r in kept}) == len(kept)  # distinct pairs, distinct ids
    con.close()
