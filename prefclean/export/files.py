"""File exports through DuckDB's COPY (no Python loops): Parquet (zstd), JSONL, CSV.

Written beside the destination under a temporary name, then moved into place: a crash never leaves a
half-written file where the real one should be.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import duckdb

from ..errors import ExportError


def _destination(project, export, suffix: str) -> Path:
    path = Path(export.options.get("path") or f"target/exports/{export.name}{suffix}")
    return path if path.is_absolute() else project.root / path


SUFFIXES = {"parquet": ".parquet", "jsonl": ".jsonl", "csv": ".csv"}


def _tmp_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")


def remove_leftover_files(dest: Path) -> list[Path]:
    """Remove the temporary files a killed export of dest left beside it (`.NAME.xxxxxxxx.tmp`). Call it only
    while holding the warehouse: an export in another process would hold it too."""
    if not dest.parent.is_dir():
        return []
    pattern = re.compile(re.escape(f".{dest.name}.") + r"[0-9a-f]{8}\.tmp")
    removed = [p for p in dest.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def remove_leftover_exports(project) -> list[Path]:
    """At the start of a build: the leftovers of every file export of the project."""
    removed: list[Path] = []
    for export in project.exports.values():
        if export.target in SUFFIXES:
            removed += remove_leftover_files(_destination(project, export, SUFFIXES[export.target]))
    return removed


def copy_to_file(con: duckdb.DuckDBPyConnection, select_sql: str, dest: Path, fmt: str, options: dict) -> int:
    """COPY (select) to dest atomically; returns rows written. `lines`: the select's one column is written as
    it is, one value a line (JSON text kept byte for byte)."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a file where the path needs a folder
        raise ExportError(f"cannot make the export's folder {dest.parent}: {exc.strerror}") from None
    remove_leftover_files(dest)
    tmp = _tmp_name(dest)
    if fmt == "parquet":
        opts = ["format parquet", f"compression {options.get('compression', 'zstd')}"]
        if options.get("row_group_size"):
            opts.append(f"row_group_size {int(options['row_group_size'])}")
    elif fmt == "jsonl":
        opts = ["format json"] + (["array true"] if options.get("array") else [])
    elif fmt == "csv":
        opts = ["format csv", "header true"]
    elif fmt == "lines":  # no quoting, no escaping; chr(1) never occurs raw in JSON text, so nothing is quoted
        opts = ["format csv", "header false", "quote ''", "escape ''", "delimiter e'\\x01'"]
    else:  # pragma: no cover - guarded by the registry
        raise ExportError(f"unknown file format {fmt}")
    try:
        con.execute(f"copy ({select_sql}) to '{str(tmp).replace(chr(39), chr(39) * 2)}' ({', '.join(opts)})")
        rows = con.execute(f"select count(*) from ({select_sql})").fetchall()[0][0]
        os.replace(tmp, dest)
    except duckdb.Error as exc:
        raise ExportError(f"cannot write {dest}: {' '.join(str(exc).split())}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return rows


JUDGMENT_COLUMN = "prefclean_judgment"  # a STRUCT a model adds beside rows written back in their own format
LINE_COLUMN = "prefclean_source_line"  # a JSON-lines source's row as its line of text (formats.templates)


def _columns(con: duckdb.DuckDBPyConnection, rel: str) -> list[str]:
    return [r[0] for r in con.execute(f"describe select * from {rel}").fetchall()]


def _judgment_fields(con, rel: str, columns: list[str], with_judgments) -> list[tuple[str, str]]:
    """[(field of prefclean_judgment, the name it is written as)] when `with_judgments: true`, else []."""
    if not isinstance(with_judgments, bool):
        raise ExportError(f"`with_judgments` must be true or false, got {with_judgments!r}")
    if not with_judgments:
        return []
    if JUDGMENT_COLUMN not in columns:
        raise ExportError(f"`with_judgments: true` needs a {JUDGMENT_COLUMN} column, which the model lacks")
    fields = [r[0] for r in con.execute(f"describe select unnest({JUDGMENT_COLUMN}) from {rel}").fetchall()]
    taken = set(columns)
    return [(f, "prefclean_" + f if f in taken else f) for f in fields]


def rows_select(con: duckdb.DuckDBPyConnection, rel: str, with_judgments) -> str:
    """What a file export writes: the model's rows, without its `prefclean_judgment` STRUCT unless
    `with_judgments: true`, which writes the STRUCT's fields (ratings, decision, reason) as columns
    (prefixed with `prefclean_` where the rows already have a column of that name), and never the
    `prefclean_source_line` text."""
    columns = _columns(con, rel)
    fields = _judgment_fields(con, rel, columns, with_judgments)
    hidden = [c for c in (JUDGMENT_COLUMN, LINE_COLUMN) if c in columns]
    select = f"select * exclude ({', '.join(hidden)})" if hidden else "select *"
    extra = "".join(f', {JUDGMENT_COLUMN}."{f}" as "{name}"' for f, name in fields)
    return f"{select}{extra} from {rel}"


def lines_select(con: duckdb.DuckDBPyConnection, rel: str, with_judgments) -> str | None:
    """For a JSONL export of rows that carry their source line: each row's line as it was read; with
    `with_judgments: true`, the judgment's fields added before the closing brace (the rest of the line
    unchanged). None when the rows carry no line."""
    columns = _columns(con, rel)
    if LINE_COLUMN not in columns:
        return None
    fields = _judgment_fields(con, rel, columns, with_judgments)
    if not fields:
        return f"select {LINE_COLUMN} from {rel}"
    extra = "to_json(struct_pack(" + ", ".join(f'"{name}" := {JUDGMENT_COLUMN}."{f}"' for f, name in fields) + "))::varchar"
    line = f"rtrim({LINE_COLUMN})"
    return (f"select left({line}, length({line}) - 1) "
            f"|| case when json_array_length(json_keys({line})) = 0 then '' else ', ' end "
            f"|| substr({extra}, 2) from {rel}")


def _file_exporter(fmt: str, suffix: str):
    def export_file(con, project, export, rel):
        dest = _destination(project, export, suffix)
        with_judgments = export.options.get("with_judgments", False)
        lines = lines_select(con, rel, with_judgments) if fmt == "jsonl" and not export.options.get("array") else None
        if lines:  # rows read from JSON lines go back as those lines
            rows = copy_to_file(con, lines, dest, "lines", export.options)
        else:
            rows = copy_to_file(con, rows_select(con, rel, with_judgments), dest, fmt, export.options)
        shown = dest.relative_to(project.root) if dest.is_relative_to(project.root) else dest
        return f"{rows} rows of {export.model} -> {shown} ({dest.stat().st_size / 1024:.1f} KiB)"

    return export_file


export_parquet = _file_exporter("parquet", SUFFIXES["parquet"])
export_jsonl = _file_exporter("jsonl", SUFFIXES["jsonl"])
export_csv = _file_exporter("csv", SUFFIXES["csv"])
