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
    """COPY (select) to dest atomically; returns rows written."""
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
        opts = ["format json"]
    elif fmt == "csv":
        opts = ["format csv", "header true"]
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


def rows_select(con: duckdb.DuckDBPyConnection, rel: str, with_judgments) -> str:
    """What a file export writes: the model's rows, without its `prefclean_judgment` STRUCT unless
    `with_judgments: true`, which writes the STRUCT's fields (ratings, decision, reason) as columns
    (prefixed with `prefclean_` where the rows already have a column of that name)."""
    if not isinstance(with_judgments, bool):
        raise ExportError(f"`with_judgments` must be true or false, got {with_judgments!r}")
    columns = [r[0] for r in con.execute(f"describe select * from {rel}").fetchall()]
    if JUDGMENT_COLUMN not in columns:
        if with_judgments:
            raise ExportError(f"`with_judgments: true` needs a {JUDGMENT_COLUMN} column, which the model lacks")
        return f"select * from {rel}"
    if not with_judgments:
        return f"select * exclude ({JUDGMENT_COLUMN}) from {rel}"
    fields = [r[0] for r in con.execute(f"describe select unnest({JUDGMENT_COLUMN}) from {rel}").fetchall()]
    taken = set(columns)
    extra = ", ".join(f'{JUDGMENT_COLUMN}."{f}" as "{"prefclean_" + f if f in taken else f}"' for f in fields)
    return f"select * exclude ({JUDGMENT_COLUMN}), {extra} from {rel}"


def _file_exporter(fmt: str, suffix: str):
    def export_file(con, project, export, rel):
        dest = _destination(project, export, suffix)
        select = rows_select(con, rel, export.options.get("with_judgments", False))
        rows = copy_to_file(con, select, dest, fmt, export.options)
        shown = dest.relative_to(project.root) if dest.is_relative_to(project.root) else dest
        return f"{rows} rows of {export.model} -> {shown} ({dest.stat().st_size / 1024:.1f} KiB)"

    return export_file


export_parquet = _file_exporter("parquet", SUFFIXES["parquet"])
export_jsonl = _file_exporter("jsonl", SUFFIXES["jsonl"])
export_csv = _file_exporter("csv", SUFFIXES["csv"])
