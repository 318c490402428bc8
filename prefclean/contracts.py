"""dbt's model contracts: `contract: {enforced: true}` and a `data_type` for every column in the property file.

Before the model builds, its query's columns are checked against the contract: the same names, and the same
types as DuckDB spells them (`int` and `integer` are one type). A mismatch fails the model with every difference
named, and the previous version stays. A table is built with its columns in the contract's order, as dbt does.
Constraints (`constraints:` on the model or a column) are not supported and stay refused by name.
"""

from __future__ import annotations

from typing import Any

import duckdb

from .errors import CompileError, ModelError
from .warehouse import quote

ENFORCEABLE = ("table", "view")


def enforced(model: Any) -> bool:
    return bool((model.config.get("contract") or {}).get("enforced"))


def check_declared(model: Any, owner: str) -> None:
    """At compile time: the config's shape, a materialization that can have one, a data_type for each column."""
    contract = model.config.get("contract")
    if contract is None:
        return
    if not isinstance(contract, dict) or not set(contract) <= {"enforced", "alias_types"} or not all(
            isinstance(v, bool) for v in contract.values()):
        raise CompileError(f"{owner}: `contract` should be {{enforced: true/false}}")
    if not enforced(model):
        return
    if model.materialized not in ENFORCEABLE:
        raise CompileError(f"{owner}: an enforced contract is supported by prefclean on tables and views only "
                           f"(this model is materialized='{model.materialized}')")
    if not model.columns:
        raise CompileError(f"{owner}: an enforced contract needs the model's columns, each with a data_type, in its "
                           "property file")
    untyped = [c for c, props in model.columns.items() if not props.get("data_type")]
    if untyped:
        raise CompileError(f"{owner}: an enforced contract needs a data_type for every column; missing for "
                           f"{', '.join(untyped)}")


def _canonical(con: duckdb.DuckDBPyConnection, model: Any, column: str, data_type: str) -> str:
    try:
        return str(con.execute(f"select typeof(cast(null as {data_type}))").fetchall()[0][0])
    except duckdb.Error:
        raise ModelError(f"model '{model.name}': contract column {column}: data_type '{data_type}' is not a DuckDB "
                         "type") from None


def enforce(con: duckdb.DuckDBPyConnection, model: Any) -> str:
    """Check the query against the contract; returns the SQL to build (a table's columns in contract order)."""
    have = {r[0]: r[1] for r in con.execute(f"describe {model.compiled_sql}").fetchall()}  # binds, runs nothing
    want = {c: _canonical(con, model, c, props["data_type"]) for c, props in model.columns.items()}
    problems = [f"{c}: missing from the query" for c in want if c not in have]
    problems += [f"{c}: not in the contract" for c in have if c not in want]
    problems += [f"{c}: the query gives {have[c]}, the contract says {want[c]}" for c in want
                 if c in have and have[c] != want[c]]
    if problems:
        raise ModelError(f"model '{model.name}' failed: its enforced contract does not match its query ("
                         + "; ".join(problems) + "); the previous version is kept")
    if model.materialized != "table":
        return model.compiled_sql
    return f"select {', '.join(quote(c) for c in want)} from ({model.compiled_sql}\n)"
