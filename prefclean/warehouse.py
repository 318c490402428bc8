"""The DuckDB warehouse: connecting, naming relations, and swapping tables in atomically."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import duckdb

from . import meta_tables

SOURCES_SCHEMA = "sources"
MODELS_SCHEMA = "main"
META_SCHEMA = "_prefclean"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def relation(schema: str, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}"


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a folder should be, a path that cannot exist: the config's, not ours
        from .errors import PrefcleanError

        raise PrefcleanError(f"cannot make the warehouse's folder {path.parent}: {exc.strerror}; "
                             "check `warehouse:` in prefclean.yml") from None
    if read_only and not path.exists():
        from .errors import PrefcleanError

        raise PrefcleanError(f"no warehouse at {path}: run `prefclean build` first")
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        from .errors import PrefcleanError

        text = " ".join(str(exc).split())
        if isinstance(exc, duckdb.IOException) and "lock" in text.lower():
            from .readonly import lock_advice

            first = text.split(". ")[0].replace("IO Error: ", "")
            advice = lock_advice(str(exc)) or (f"another process holds it ({first}); close that process "
                                               "(another build, `prefclean sql --write`, a notebook) and try again")
            raise PrefcleanError(f"the warehouse is in use by another process: {advice}") from None
        raise _unusable(path, text) from None
    if not read_only:
        try:
            for schema in (SOURCES_SCHEMA, META_SCHEMA):
                con.execute(f"create schema if not exists {quote(schema)}")
            meta_tables.MIGRATIONS.migrate(con)  # prefclean's own tables, brought up to date
        except (duckdb.IOException, duckdb.SerializationException) as exc:  # a truncated or damaged file
            con.close()
            raise _unusable(path, " ".join(str(exc).split())) from None
        except BaseException:
            con.close()
            raise
    return con


_SHORT_READ = re.compile(r'Could not read enough bytes from file "(?P<path>[^"]+)"')


def damaged_file_error(exc: BaseException):
    """The one-line error for DuckDB's "Could not read enough bytes" (a DuckDB file truncated or damaged after it
    opened: a block it lists is missing), or None for any other exception."""
    match = _SHORT_READ.search(str(exc)) if isinstance(exc, duckdb.IOException) else None
    if match is None:
        return None
    from .errors import PrefcleanError

    return PrefcleanError(f"the DuckDB file {match['path']} is damaged (cut short?): {' '.join(str(exc).split())}; "
                          "move it aside (or delete it): `prefclean build` makes a new one")


def _unusable(path: Path, text: str):
    """Not a DuckDB file, a damaged one, or one from a newer DuckDB: the user's file, not a prefclean bug."""
    from .errors import PrefcleanError

    return PrefcleanError(f"cannot open the warehouse {path}: {text.replace('IO Error: ', '')[:300]}; move the "
                          "file aside (or delete it) and `prefclean build` makes a new one")


# Side tables of an atomic build (swap_in_table, an incremental merge): a killed process leaves them behind.
LEFTOVER_SUFFIXES = ("__prefclean_tmp", "__prefclean_new")


def drop_leftovers(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Drop side tables a killed build left (only a writer that holds the warehouse may call this: no other
    build can be using them). Returns what it dropped, as schema.name."""
    rows = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = current_database() and ("
        + " or ".join("ends_with(table_name, ?)" for _ in LEFTOVER_SUFFIXES) + ")", list(LEFTOVER_SUFFIXES)).fetchall()
    for schema, name in rows:
        con.execute(f"drop table if exists {relation(schema, name)}")
    return [f"{schema}.{name}" for schema, name in rows]


def relation_kind(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> str | None:
    """'table', 'view' or None: what currently stands at schema.name."""
    rows = con.execute(
        "select table_type from information_schema.tables where table_schema = ? and table_name = ? "
        "and table_catalog = current_database()",
        [schema, name],
    ).fetchall()
    if not rows:
        return None
    return "view" if rows[0][0] == "VIEW" else "table"


def drop_relation(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> None:
    kind = relation_kind(con, schema, name)
    if kind:
        con.execute(f"drop {kind} {relation(schema, name)}")


_IN_TRANSACTION: set[int] = set()  # connections inside transaction(): an inner one joins the outer one


def in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    return id(con) in _IN_TRANSACTION


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    """All or nothing: commit when the block ends, roll back if it raises (Ctrl-C included). Nested, the inner
    block is part of the outer transaction (a model's hooks and its swap commit together)."""
    if in_transaction(con):
        yield con
        return
    con.execute("begin transaction")
    _IN_TRANSACTION.add(id(con))
    try:
        yield con
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        _IN_TRANSACTION.discard(id(con))


def swap_in_table(con: duckdb.DuckDBPyConnection, schema: str, name: str, select_sql: str) -> int:
    """Build select_sql into a side table, then replace schema.name with it in one transaction.

    If the select fails, the previous version of the table is untouched. Returns the row count.
    """
    tmp = f"{name}__prefclean_tmp"
    con.execute(f"drop table if exists {relation(schema, tmp)}")
    try:
        con.execute(f"create table {relation(schema, tmp)} as {select_sql}")
        with transaction(con):
            drop_relation(con, schema, name)
            con.execute(f"alter table {relation(schema, tmp)} rename to {quote(name)}")
    finally:
        if not in_transaction(con):  # (inside an outer transaction, its rollback removes the side table)
            con.execute(f"drop table if exists {relation(schema, tmp)}")
    return count_rows(con, relation(schema, name))


def swap_in_view(con: duckdb.DuckDBPyConnection, schema: str, name: str, select_sql: str) -> None:
    """Make schema.name a view of select_sql, replacing a table or view of that name, in one transaction."""
    with transaction(con):
        if relation_kind(con, schema, name) == "table":
            con.execute(f"drop table {relation(schema, name)}")
        con.execute(f"create or replace view {relation(schema, name)} as {select_sql}")


def record_relation(con: duckdb.DuckDBPyConnection, model: str, schema: str | None, identifier: str | None) -> None:
    """Remember where `model` now stands (None: nowhere, an ephemeral model), for model_relation()."""
    if schema is None:
        con.execute(f"delete from {META_SCHEMA}.model_relations where model = ?", [model])
    else:  # one statement, one commit (model is the table's primary key)
        con.execute(f"insert or replace into {META_SCHEMA}.model_relations values (?, ?, ?, now())",
                    [model, schema, identifier])


def model_relations(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str]]:
    """model -> (schema, identifier) of every model as last built (a warehouse from before model_relations
    has none: its models are all main.NAME)."""
    # Ask the catalog first: with the table missing, DuckDB would look for a Python object of that name in
    # the caller's frames (a replacement scan) and find this very function.
    exists = con.execute("select count(*) from duckdb_tables() where database_name = current_database() and schema_name = ? "
                         "and table_name = 'model_relations'",
                         [META_SCHEMA]).fetchall()[0][0]
    if not exists:
        return {}
    rows = con.execute(f"select model, schema_name, identifier from {META_SCHEMA}.model_relations").fetchall()
    return {m: (s, i) for m, s, i in rows}


def model_relation(con: duckdb.DuckDBPyConnection, model: str) -> tuple[str, str]:
    """(schema, identifier) where the model was last built: main.MODEL unless its schema/alias config says else."""
    return model_relations(con).get(model, (MODELS_SCHEMA, model))


def count_rows(con: duckdb.DuckDBPyConnection, rel: str) -> int:
    return con.execute(f"select count(*) from {rel}").fetchall()[0][0]
