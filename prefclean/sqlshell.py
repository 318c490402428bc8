"""`prefclean sql`: ad-hoc SQL against the warehouse, read-only unless asked otherwise.

Model names resolve as in models: plain names (models live in the main schema unless their `schema` config says) and `{{ ref('m') }}`,
`{{ source('s') }}`, `{{ var('k') }}` all work; that Jinja renders sandboxed, in a child process with a deadline
(prefclean.sqlrender), since a query may be pasted from anywhere. Ctrl-C interrupts a long query and keeps the shell.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import duckdb

from .errors import PrefcleanError
from .project import Project
from .readonly import QueryRefused, explain_error, open_readonly
from .sqlrender import Names, RenderError, Renderer, RenderPool, has_jinja
from .warehouse import MODELS_SCHEMA, connect, model_relations, relation

FORMATS = ("table", "csv", "json", "markdown")


def query_names(project: Project, con: duckdb.DuckDBPyConnection | None = None) -> Names:
    """What a query's ref() / source() / var() resolve to: the project's models (where `con`'s warehouse built
    them: a `schema` / `alias` config moves them from main), sources and vars."""
    from .compiler import Compiler
    from .sources import source_relation

    models = Compiler(project).model_names
    built = model_relations(con) if con is not None else {}
    return Names(models={m: relation(*built.get(m, (MODELS_SCHEMA, m))) for m in models},
                 sources={s: source_relation(s) for s in project.sources}, vars=dict(project.vars))


def render_query(project: Project, text: str, renderer: Renderer | RenderPool | None = None,
                 con: duckdb.DuckDBPyConnection | None = None) -> str:
    """Expand {{ ref() }} / {{ source() }} / {{ var() }} in a sandbox (and nothing else: no macros, no Python)."""
    if not has_jinja(text):
        return text
    try:
        if renderer is not None:
            return renderer.render(text, query_names(project, con))
        with Renderer() as once:
            return once.render(text, query_names(project, con))
    except RenderError as exc:
        raise (QueryRefused if exc.refused else PrefcleanError)(str(exc)) from None


def open_connection(project: Project, *, write: bool) -> duckdb.DuckDBPyConnection:
    """The warehouse with the project's udfs/ functions, so views that call them can be queried."""
    from .udf import RunContext, load_project_udfs, register_udfs

    con = connect(project.warehouse) if write else open_readonly(project.warehouse)
    try:
        specs = [s for s in load_project_udfs(project.udfs_dir) if not s.with_context]
        register_udfs(con, specs, RunContext(project=project))
    except BaseException:
        con.close()
        raise
    return con


class QueryInterrupted(PrefcleanError):
    """Ctrl-C stopped a query; the connection stays usable."""

    exit_code = 130


def run_query(con: duckdb.DuckDBPyConnection, sql: str):
    """Run in a worker thread so Ctrl-C can interrupt DuckDB; returns an Arrow table.

    The wait is on an Event, not Thread.join(): a KeyboardInterrupt inside join() makes Python believe the
    thread has ended, and closing the still-busy connection then aborts the process.
    """
    result: dict = {}
    done, cancelled = threading.Event(), threading.Event()

    def work():
        try:
            if cancelled.is_set():  # Ctrl-C came while this thread was starting: never touch the connection
                return
            rel = con.sql(sql)
            result["table"] = rel.to_arrow_table() if rel is not None else None
        except duckdb.Error as exc:
            result["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, daemon=True)
    try:
        worker.start()  # inside the try: Ctrl-C can land while start() waits for the thread
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        cancelled.set()
        while worker.is_alive() and not done.is_set():  # again and again: one sent before the query began is lost
            try:
                con.interrupt()
            except duckdb.Error:
                pass
            done.wait(0.05)
        raise QueryInterrupted("query interrupted") from None
    exc = result.get("error")
    if exc is not None:
        if isinstance(exc, getattr(duckdb, "InterruptException", ())):
            raise QueryInterrupted("query interrupted") from None
        error = explain_error(exc)
        if isinstance(error, QueryRefused) and "read-only mode" in str(exc):
            error = QueryRefused(f"{error}; use `prefclean sql --write` to change the warehouse")
        raise error from None
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
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.csv"
            _write_csv(table, out)
            return out.read_text(encoding="utf-8").rstrip("\n")
    if fmt == "markdown":
        return _markdown(table)
    scratch = duckdb.connect()
    scratch.register("result", table)
    text = scratch.sql("select * from result").__str__() if table.num_rows <= max_rows else \
        scratch.sql(f"select * from result limit {max_rows}").__str__() + f"\n({table.num_rows} rows, {max_rows} shown)"
    scratch.close()
    return text.rstrip("\n")


def _write_csv(table, path: Path) -> None:
    """DuckDB's CSV writer: unlike Arrow's, it handles list and struct columns (judgments, generations)."""
    scratch = duckdb.connect()
    try:
        scratch.register("result", table)
        scratch.execute(f"copy result to '{str(path).replace(chr(39), chr(39) * 2)}' (format csv, header true)")
    finally:
        scratch.close()


def write_output(table, path: Path) -> str:
    """Write results to .parquet/.csv/.json(l) atomically through Arrow."""
    import pyarrow.parquet as pq

    if table is None:
        raise PrefcleanError(f"-o {path}: the statement returned no result to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        pq.write_table(table, tmp, compression="zstd")
    elif suffix == ".csv":
        _write_csv(table, tmp)
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
    renderer = Renderer()  # one sandbox process for the session
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
                echo(format_table(run_query(con, render_query(project, text.rstrip(";"), renderer, con)), fmt))
            except PrefcleanError as exc:
                echo(f"error: {exc}")
            except KeyboardInterrupt:  # while rendering: the query never ran
                renderer.close()
                echo("error: query interrupted")
    finally:
        renderer.close()
        if readline is not None:
            try:
                history.parent.mkdir(parents=True, exist_ok=True)
                readline.write_history_file(history)
            except OSError:
                pass
