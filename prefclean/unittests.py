"""dbt's unit tests: given rows for a model's inputs, the rows the model must return.

    unit_tests:
      - name: a_tie_is_dropped
        model: pair_decisions
        given:
          - input: ref('pair_ratings')
            rows: [{pair_id: p1, chosen_rating: 3, rejected_rating: 3}]
        expect:
          rows: [{pair_id: p1, decision: drop, reason: tie}]
        overrides: {vars: {min_margin: 1}, macros: {is_incremental: false}}

The model is rendered with each ref()/source()/this replaced by its given rows (columns not given are NULL,
typed like the real input when it stands in the warehouse), and its output compared, as a multiset, with the
expected rows on the expected columns. A unit test is a data test whose failing rows are the differences:
severity, tags and `prefclean test` work as for the others; `prefclean build` runs it just before its model,
and a failure keeps the model's previous version.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from typing import Any

import duckdb

from .compiler import Compiler, Model
from .errors import ProjectError
from .properties import UnitTestSpec
from .warehouse import MODELS_SCHEMA, SOURCES_SCHEMA, quote, relation, relation_kind

_INPUT = re.compile(r"""^\s*(?:(ref|source)\s*\(\s*(['"])([^'"]+)\2\s*(?:,\s*(['"])([^'"]+)\4\s*)?\)|(this))\s*$""")


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"{'TIMESTAMP' if isinstance(value, datetime.datetime) else 'DATE'} '{value.isoformat()}'"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(str(k))}: {_literal(v)}" for k, v in value.items()) + "}"
    return "'" + str(value).replace("'", "''") + "'"


def _columns(con: duckdb.DuckDBPyConnection, sql_or_relation: str) -> dict[str, str]:
    try:
        return {r[0]: r[1] for r in con.execute(f"describe {sql_or_relation}").fetchall()}
    except duckdb.Error:
        return {}


def _rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    if spec["format"] == "csv":
        return [{k: (v if v != "" else None) for k, v in row.items()}
                for row in csv.DictReader(io.StringIO(spec["rows"].strip()))]
    return list(spec["rows"])


def rows_sql(spec: dict[str, Any], types: dict[str, str], where: str, *, all_columns: bool) -> tuple[str, list[str]]:
    """A SELECT of the given rows; typed as `types` says; with all_columns, columns not given are NULL."""
    if spec["format"] == "sql":
        return spec["rows"], []
    rows = _rows(spec)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if all_columns:
        columns += [c for c in types if c not in columns]
    if not rows:
        if not columns:
            raise ProjectError(f"{where}: `rows: []` needs its input in the warehouse (build it once) to know its "
                               "columns, or format: sql")
        return ("select " + ", ".join(f"NULL::{types.get(c, 'VARCHAR')} as {quote(c)}" for c in columns)
                + " where false"), columns

    def cell(row: dict, column: str) -> str:
        value = _literal(row.get(column))
        return f"cast({value} as {types[column]})" if column in types else value

    selects = ["select " + ", ".join(f"{cell(row, c)} as {quote(c)}" for c in columns) for row in rows]
    return " union all ".join(selects), columns


def _input_key(text: str, where: str) -> tuple[str, ...]:
    match = _INPUT.match(text)
    if not match:
        raise ProjectError(f"{where}: input '{text}' should be ref('model'), source('name', 'table') or this")
    kind, first, second, this = match.group(1), match.group(3), match.group(5), match.group(6)
    if this:
        return ("this",)
    return (kind, second or first)


class UnitTest:
    def __init__(self, compiler: Compiler, spec: UnitTestSpec, inputs: list[tuple[tuple[str, ...], dict]]):
        self.compiler, self.spec, self.inputs = compiler, spec, inputs
        self.where = f"{spec.path}: unit test {spec.name}"

    def input_types(self, con, key: tuple[str, ...]) -> dict[str, str]:
        if key[0] == "source":
            return _columns(con, relation(SOURCES_SCHEMA, key[1]))
        parent = self.compiler.models.get(self.spec.model if key == ("this",) else key[1])
        schema, name = (parent.schema, parent.identifier) if parent is not None else (MODELS_SCHEMA, key[-1])
        if key == ("this",) or relation_kind(con, schema, name) is not None:
            return _columns(con, relation(schema, name))
        # an ephemeral parent, or one not built yet
        return _columns(con, f"({parent.compiled_sql}\n)") if parent is not None and parent.compiled_sql else {}

    def sql(self, con: duckdb.DuckDBPyConnection) -> str:
        mocks = {}
        for key, given in self.inputs:
            mocks[key] = rows_sql(given, self.input_types(con, key), f"{self.where} input {'.'.join(key)}",
                                  all_columns=True)[0]
        overrides = self.spec.overrides
        model = self.compiler.models[self.spec.model]
        copy = Model(name=model.name, path=model.path, template=model.template)
        with self.compiler.mocked(mocks, dict(overrides.get("vars") or {}), dict(overrides.get("macros") or {}),
                                  dict(overrides.get("env_vars") or {})):
            actual = self.compiler.render(copy, incremental=bool((overrides.get("macros") or {}).get("is_incremental")))
        actual_types = _columns(con, f"({actual}\n)")
        expected, columns = rows_sql(self.spec.expect, actual_types, f"{self.where} expect", all_columns=False)
        if not columns:  # format: sql
            columns = list(_columns(con, f"({expected}\n)"))
        missing = [c for c in columns if c not in actual_types]
        if missing and actual_types:
            raise ProjectError(f"{self.where}: expected column(s) {', '.join(missing)} are not in the output of "
                               f"model '{self.spec.model}' (it has: {', '.join(actual_types)})")
        cols = ", ".join(quote(c) for c in columns)
        return (f"with actual as (select {cols} from ({actual}\n) a), expected as (select {cols} from ({expected}\n) e) "
                f"select 'expected, not returned' as prefclean_diff, * from "
                f"(select * from expected except all select * from actual) "
                f"union all select 'returned, not expected', * from "
                f"(select * from actual except all select * from expected)")


def load_unit_tests(compiler: Compiler, taken: set[str]) -> list[UnitTest]:
    """The project's unit tests, checked against their models (inputs, names); `taken`: other tests' names."""
    tests = []
    for spec in compiler.properties.unit_tests:
        if spec.model in compiler.disabled or spec.config.get("enabled", True) is False:
            continue
        where = f"{spec.path}: unit test {spec.name}"
        if spec.name in taken:
            raise ProjectError(f"{where}: a test named '{spec.name}' already exists; unit tests need their own names")
        taken.add(spec.name)
        model = compiler.models[spec.model]
        inputs = [(_input_key(g["input"], where), g) for g in spec.given]
        given = {key for key, _ in inputs}
        for key in given:
            if key == ("this",) and model.materialized != "incremental":
                raise ProjectError(f"{where}: input `this` is for incremental models ('{spec.model}' is a {model.materialized})")
            if key != ("this",) and key[1] not in (model.refs if key[0] == "ref" else model.sources):
                raise ProjectError(f"{where}: model '{spec.model}' does not read {key[0]}('{key[1]}')")
        needed = {("ref", r) for r in model.refs} | {("source", s) for s in model.sources}
        if needed - given:
            names = ", ".join(f"{k}('{n}')" for k, n in sorted(needed - given))
            raise ProjectError(f"{where}: give rows for every input of model '{spec.model}'; missing: {names}")
        tests.append(UnitTest(compiler, spec, inputs))
    return tests
