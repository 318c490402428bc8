"""Stage sources into the warehouse through DuckDB readers and Arrow -- never row by row in Python.

Each source becomes `sources.<name>`: a table (a snapshot of the data), or, for files DuckDB reads
natively (`materialized: view`, the default for Parquet), a view that reads them in place. A source whose
inputs have not changed since the last build (same files, sizes and modification times; same dataset
fingerprint) is not staged again.
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Callable

import duckdb

from .errors import SourceError
from .project import Project, SourceConfig
from .warehouse import (META_SCHEMA, SOURCES_SCHEMA, count_rows, quote, relation, relation_kind, swap_in_table,
                        swap_in_view)

# A loader turns a source config into (select SQL over the raw data, fingerprint). Loaders register by type.
Loader = Callable[[duckdb.DuckDBPyConnection, SourceConfig, Project], tuple[str, str]]
LOADERS: dict[str, Loader] = {}


def register_loader(kind: str):
    def decorator(fn: Loader) -> Loader:
        LOADERS[kind] = fn
        return fn

    return decorator


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _matching_files(source: SourceConfig, project: Project) -> list[Path]:
    pattern = source.path if Path(source.path).is_absolute() else str(project.root / source.path)
    files = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        raise SourceError(f"source '{source.name}': no file matches {source.path} (looked in {project.root})")
    return files


def _files_fingerprint(files: list[Path], extra: object = None) -> str:
    parts = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha256(json.dumps([parts, extra], default=str).encode()).hexdigest()


def _literal(value) -> str:
    """A YAML value as a DuckDB literal: lists and mappings too (read_csv's `names:`, `columns:`)."""
    if isinstance(value, str):
        return _sql_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_sql_string(str(k))}: {_literal(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # numbers, true/false, null


def _options_sql(options: dict) -> str:
    out = []
    for key, value in options.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)):
            raise SourceError(f"invalid reader option name {key!r}")
        out.append(f", {key} = {_literal(value)}")
    return "".join(out)


def _file_loader(reader: str, defaults: dict | None = None) -> Loader:
    def load(con, source, project):
        files = _matching_files(source, project)
        file_list = "[" + ", ".join(_sql_string(str(f.resolve())) for f in files) + "]"  # a view keeps them
        options = {**(defaults or {}), **source.options}  # the user's options win over our defaults
        sql = f"select * from {reader}({file_list}{_options_sql(options)})"
        return sql, _files_fingerprint(files, source.options)

    return load


register_loader("parquet")(_file_loader("read_parquet"))
register_loader("csv")(_file_loader("read_csv", {"header": True}))
register_loader("jsonl")(_file_loader("read_json", {"format": "newline_delimited"}))


@register_loader("duckdb")
def _load_duckdb(con, source, project):
    path = Path(source.path) if Path(source.path).is_absolute() else project.root / source.path
    if not path.exists():
        raise SourceError(f"source '{source.name}': DuckDB file {source.path} does not exist")
    alias = f"src_{source.name}"
    attached = {row[0] for row in con.execute("select database_name from duckdb_databases()").fetchall()}
    if alias not in attached:
        con.execute(f"attach {_sql_string(str(path))} as {quote(alias)} (read_only)")
    schema, _, table = source.table.rpartition(".")
    rel = f"{quote(alias)}.{quote(schema or 'main')}.{quote(table)}"
    exists = con.execute(
        "select count(*) from duckdb_tables() where database_name = ? and schema_name = ? and table_name = ?",
        [alias, schema or "main", table],
    ).fetchall()[0][0] or con.execute(
        "select count(*) from duckdb_views() where database_name = ? and schema_name = ? and view_name = ?",
        [alias, schema or "main", table],
    ).fetchall()[0][0]
    if not exists:
        raise SourceError(f"source '{source.name}': no table {source.table} in {source.path}")
    return f"select * from {rel}", _files_fingerprint([path], source.table)


def _project_path(value, project: Project):
    """data_files may be a string, a list or a {split: files} mapping of paths relative to the project."""
    if isinstance(value, str):
        return value if Path(value).is_absolute() or "://" in value else str(project.root / value)
    if isinstance(value, list):
        return [_project_path(v, project) for v in value]
    if isinstance(value, dict):
        return {k: _project_path(v, project) for k, v in value.items()}
    return value


def _split_name(split: str | None) -> str:
    return (split or "train").split("[")[0]


def _split_slice(split: str | None) -> tuple[int | None, int | None] | None:
    """`train[:20]` -> (None, 20); `train[5:10]` -> (5, 10); no brackets -> None (percentages not supported)."""
    match = re.fullmatch(r"[^\[]+\[(-?\d*):(-?\d*)\]", split or "")
    if not match:
        return None
    return tuple(int(x) if x else None for x in match.groups())  # type: ignore[return-value]


@register_loader("huggingface")
def _load_huggingface(con, source, project):
    """datasets.load_dataset -> its Arrow table, registered in DuckDB without copying into Python objects."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise SourceError("the huggingface source type needs the `datasets` package") from None
    # Local paths (a data folder, a save_to_disk folder, data_files) are relative to the project, not the cwd.
    local = Path(source.path) if Path(source.path).is_absolute() else project.root / source.path
    options = {k: _project_path(v, project) if k in ("data_files", "data_dir") else v for k, v in source.options.items()}
    try:
        if (local / "state.json").exists() or (local / "dataset_dict.json").exists():
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[_split_name(source.split)]
            if "[" in (source.split or "") and _split_slice(source.split) is None:
                raise SourceError(f"source '{source.name}': split '{source.split}' for a saved dataset must be "
                                  "a row range like train[:20] or train[5:10]")
            if _split_slice(source.split):
                ds = ds.select(range(*slice(*_split_slice(source.split)).indices(len(ds))))
        else:
            path = str(local) if local.exists() else source.path
            ds = datasets.load_dataset(path, source.hf_name, split=source.split or "train", **options)
    except SourceError:
        raise
    except Exception as exc:  # datasets raises many types; the user needs the message, not the traceback
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"source '{source.name}': cannot load Hugging Face dataset {source.path!r}: {message}") from None
    if isinstance(ds, dict):  # a DatasetDict when split resolves to several
        raise SourceError(f"source '{source.name}': set `split` (one of {', '.join(ds)})")
    table = ds.data.table
    if getattr(ds, "_indices", None) is not None:  # a slice or selection: take the rows in Arrow, write no cache
        table = table.take(ds._indices.table.column(0))
    view = f"hf_{source.name}"
    con.register(view, table)
    return f"select * from {quote(view)}", getattr(ds, "_fingerprint", "") + json.dumps([source.path, source.hf_name, source.split])


@register_loader("inline")
def _load_inline(con, source, project):
    import pyarrow as pa

    try:
        table = pa.Table.from_pylist(list(source.rows))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError(f"source '{source.name}': inline rows have inconsistent types: {exc}") from None
    view = f"inline_{source.name}"
    con.register(view, table)
    return f"select * from {quote(view)}", hashlib.sha256(json.dumps(list(source.rows), sort_keys=True, default=str).encode()).hexdigest()


def _reader_error(source: SourceConfig, exc: duckdb.Error) -> SourceError:
    """One line naming the source and the file; a JSON line number as the file counts it."""
    message = _fix_json_line(str(exc).strip().splitlines()[0])
    return SourceError(f"source '{source.name}': cannot read {source.path or 'rows'}: {message}")


_JSON_LINE = re.compile(r'Malformed JSON in file "(?P<file>[^"]+)", at byte (?P<byte>\d+) in line (?P<line>\d+)')


def _fix_json_line(message: str) -> str:
    """DuckDB (2.0) names the line after a malformed JSONL line ("line 7" for line 6): read the file to find
    which of the two does not parse, and name that one (the message stands if neither fails)."""
    match = _JSON_LINE.search(message)
    if not match:
        return message
    reported = int(match["line"])
    first = max(reported - 1, 1)
    try:
        with open(match["file"], "rb") as f:
            lines = list(itertools.islice(f, first - 1, reported))
    except OSError:
        return message
    for number, raw in zip(range(first, reported + 1), lines):
        if not raw.strip():
            continue
        try:
            json.loads(raw.decode("utf-8"))  # strict: bytes that are not UTF-8 make the line bad too
        except ValueError:  # (UnicodeDecodeError is one)
            shown = raw.decode("utf-8", errors="replace").strip()
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            return (message[:match.start()] + f'Malformed JSON in file "{match["file"]}", line {number} ({shown})'
                    + message[match.end():])
    return message


def _renamed(con: duckdb.DuckDBPyConnection, source: SourceConfig, sql: str) -> str:
    if not source.columns:
        return sql
    try:
        columns = [d[0] for d in con.execute(f"select * from ({sql}) limit 0").description]
    except duckdb.Error as exc:
        raise _reader_error(source, exc) from None
    missing = [c for c in source.columns if c not in columns]
    if missing and columns in (["json"], ["column0"]) and count_rows(con, f"({sql})") == 0:
        raise SourceError(f"source '{source.name}': {source.path} is empty (no rows, so no column '{missing[0]}')")
    if missing:
        raise SourceError(
            f"source '{source.name}': column '{missing[0]}' (in `columns`) does not exist; it has {', '.join(columns)}"
        )
    select = ", ".join(
        f"{quote(c)} as {quote(source.columns[c])}" if c in source.columns else quote(c) for c in columns
    )
    return f"select {select} from ({sql})"


def stage_source(con: duckdb.DuckDBPyConnection, project: Project, source: SourceConfig, *, force: bool = False) -> tuple[int, bool]:
    """Stage one source; returns (rows, staged) where staged is False when it was already up to date."""
    loader = LOADERS.get(source.type)
    if loader is None:
        raise SourceError(f"source '{source.name}': unknown type '{source.type}'")
    sql, fingerprint = loader(con, source, project)
    fingerprint = hashlib.sha256(f"{fingerprint}|{json.dumps(source.columns, sort_keys=True)}".encode()).hexdigest()
    previous = con.execute(f"select fingerprint, rows from {META_SCHEMA}.source_state where name = ?", [source.name]).fetchall()
    if not force and previous and previous[0][0] == fingerprint and \
            relation_kind(con, SOURCES_SCHEMA, source.name) == source.materialized:
        return previous[0][1], False
    sql = _renamed(con, source, sql)
    try:
        if source.materialized == "view":  # over the files by absolute path; Parquet counts from metadata
            swap_in_view(con, SOURCES_SCHEMA, source.name, sql)
            rows = count_rows(con, relation(SOURCES_SCHEMA, source.name))
        else:
            rows = swap_in_table(con, SOURCES_SCHEMA, source.name, sql)
    except duckdb.Error as exc:
        raise _reader_error(source, exc) from None
    con.execute(
        f"insert or replace into {META_SCHEMA}.source_state values (?, ?, ?, now())", [source.name, fingerprint, rows]
    )
    return rows, True


def source_relation(name: str) -> str:
    return relation(SOURCES_SCHEMA, name)


# What a model may expect of a source column, `config(source_columns={'chosen': 'text', ...})`: DuckDB types.
COLUMN_KINDS = {"text": ("VARCHAR", '"NULL"', "NULL")}  # a column that is NULL on every row has type NULL


def _describe_type(type_name: str) -> str:
    if type_name.startswith("STRUCT(") and type_name.endswith("[]") and "role" in type_name and "content" in type_name:
        return f"a list of chat messages ({type_name})"
    if type_name.endswith("[]"):
        return f"a list ({type_name})"
    if type_name.startswith("STRUCT("):
        return f"a struct ({type_name})"
    if type_name == "JSON":
        return "JSON of mixed types (some rows are not text)"
    return type_name


def check_source_columns(con: duckdb.DuckDBPyConnection, project: Project, model) -> None:
    """A model that declares `source_columns` gets a one-line SourceError, before it runs, naming the source,
    its file, the column and what was expected, instead of DuckDB's Binder or Conversion error."""
    expected: dict = model.config.get("source_columns") or {}
    for name in sorted(model.sources):
        if not expected or relation_kind(con, SOURCES_SCHEMA, name) is None:
            continue
        source = project.sources[name]
        where = f"source '{name}' ({source.path or source.type})"
        have = {row[0]: row[1] for row in con.execute(f"describe {relation(SOURCES_SCHEMA, name)}").fetchall()}
        renamed = {new: old for old, new in (source.columns or {}).items()}
        for column, kind in expected.items():
            allowed = COLUMN_KINDS.get(kind)
            if allowed is None:
                raise SourceError(f"model '{model.name}': source_columns: '{column}' is '{kind}', expected one of "
                                  f"{', '.join(COLUMN_KINDS)}")
            if column not in have:
                if count_rows(con, relation(SOURCES_SCHEMA, name)) == 0 and set(have) <= {"json", "column0"}:
                    raise SourceError(f"{where} is empty: model '{model.name}' needs rows with columns "
                                      f"{', '.join(expected)}")
                close = difflib.get_close_matches(column, list(have), n=1)
                hint = (f"; did you mean '{close[0]}' (rename it with `columns: {{{close[0]}: {column}}}`)?"
                        if close else f"; rename a column to it with `columns: {{<name>: {column}}}`")
                raise SourceError(f"{where} has no column '{column}' ({kind}), which model '{model.name}' reads; "
                                  f"it has {', '.join(have) or 'no columns'}{hint}")
            if have[column] not in allowed:
                shown = f"'{column}'" + (f" (renamed from '{renamed[column]}')" if column in renamed else "")
                chat = ("; chat-format data (lists of messages) is read by a format adapter, not by this model: "
                        "stage it with `{{ format_rows('" + name + "') }}`, or start a project for it with "
                        "`prefclean init DIR --from FILE`") if "role" in have[column] else ""
                raise SourceError(f"{where}: column {shown} is {_describe_type(have[column])}; model '{model.name}' "
                                  f"expects {kind}{chat}")
