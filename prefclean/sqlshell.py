"""`prefclean sql`: ad-hoc SQL against the warehouse, read-only unless asked otherwise.

Model names resolve as in models: plain names (they live in the main schema) and `{{ ref('m') }}`,
`{{ source('s') }}`, `{{ var('k') }}` all work. Ctrl-C interrupts a long query and keeps the shell.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import duckdb

from .compiler import Compiler, Model
from .errors import PrefcleanError
from .project import Project
from .readonly import explain_error, open_readonly
from .warehouse import connect

FORMATS = ("table", "csv", "json", "markdown")


def render_query(project: Project, text: str) -> str:
    """Expand {{ ref() }} / {{ source() }} / {{ var() }} as in a model."""
    if "{{" not in text and "{%" not in text:
        return text
    compiler = Compiler(project)
    return compiler.render(Model(name="sql", path=Path("<query>"), template=text))


def open_connection(project: Project, *, write: bool) -> duckdb.DuckDBPyConnection:
    return connect(project.warehouse) if write else open_readonly(project.warehouse)


def run_query(con: duckdb.DuckDBPyConnection, sql: str):
    """Run in a worker thread so Ctrl-C can interrupt DuckDB; returns an Arrow table (or None)."""
    result: dict = {}

    def work():
        try:
            rel = con.sql(sql)
            result["table"] = rel.to_arrow_table() if rel is not None else None
        except duckdb.Error as exc:
            result["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        con.interrupt()
        worker.join()
        raise PrefcleanError("query interrupted") from None
    if "error" in result:
        raise explain_error(result["error"])
    return result.get("table")


def _markdown(table) -> str:
    rows = table.to_pylist()
    cols = table.column_names
    esc = lambda v: ("" if v is None else str(v)).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(esc(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def format_table(table, fmt: str, *, max_rows: int = 40) -> str:
    if table is None:
        return "OK"
    if fmt == "json":
        return "\n".join(json.dumps(row, default=str, ensure_ascii=False) for row in table.to_pylist())
    if fmt == "csv":
        import io

        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        return buf.getvalue().decode("utf-8").rstrip("\n")
    if fmt == "markdown":
        return _markdown(table)
    scratch = duckdb.connect()
    scratch.register("result", table)
    text = scratch.sql("select * from result").__str__() if table.num_rows <= max_rows else \
        scratch.sql(f"select * from result limit {max_rows}").__str__() + f"\n({table.num_rows} rows, {max_rows} shown)"
    scratch.close()
    return text.rstrip("\n")


def write_output(table, path: Path) -> str:
    """Write results to .parquet/.csv/.json(l) atomically through Arrow."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        pq.write_table(table, tmp, compression="zstd")
    elif suffix == ".csv":
        tmp.write_text(format_table(table, "csv") + "\n", encoding="utf-8")
    elif suffix in (".json", ".jsonl"):
        tmp.write_text(format_table(table, "json") + "\n", encoding="utf-8")
    else:
        raise PrefcleanError(f"-o {path}: use a .parquet, .csv or .jsonl file name")
    os.replace(tmp, path)
    return f"wrote {table.num_rows} rows to {path}"


def interactive(project: Project, con: duckdb.DuckDBPyConnection, fmt: str, echo) -> None:
    """A small REPL: statements end with ';', history is kept in target/.sql_history."""
    try:
        import readline
    except ImportError:  # pragma: no cover - not on every platform
        readline = None
    history = project.target_dir / ".sql_history"
    if readline is not None:
        try:
            readline.read_history_file(history)
        except OSError:
            pass
    echo("prefclean sql: end statements with ';', .quit to leave, Ctrl-C interrupts a query")
    buffer: list[str] = []
    try:
        while True:
            try:
                line = input("... " if buffer else "sql> ")
            except KeyboardInterrupt:
                buffer = []
                echo("")
                continue
            except EOFError:
                break
            if not buffer and line.strip() in (".quit", ".exit", "\\q"):
                break
            buffer.append(line)
            text = "\n".join(buffer).strip()
            if not text.endswith(";"):
                continue
            buffer = []
            try:
                echo(format_table(run_query(con, render_query(project, text.rstrip(";"))), fmt))
            except PrefcleanError as exc:
                echo(f"error: {exc}")
    finally:
        if readline is not None:
            try:
                history.parent.mkdir(parents=True, exist_ok=True)
                readline.write_history_file(history)
            except OSError:
                pass
