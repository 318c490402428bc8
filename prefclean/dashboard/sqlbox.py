"""The dashboard's SQL box: ad-hoc queries that can neither run code, starve the pages, nor fill the memory.

- The query's Jinja renders sandboxed in a child process with a deadline (prefclean.sqlrender).
- Queries run in their own small thread pool (`slots`), apart from the pages' reads, so however many are sent at
  once, the pages keep their threads; a query waits at most `wait_seconds` for a slot, then gets "busy".
- Each query is interrupted at its own deadline (`seconds`, counted from when it starts).
- What comes back is capped in DuckDB, before Python sees it: at most `max_rows` rows, `max_columns` columns,
  `max_cell` characters a cell and `max_chars` characters in all; the page says what was cut.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb

from ..errors import PrefcleanError
from ..project import Project
from ..readonly import explain_error
from ..sqlrender import RENDER_SECONDS, RenderPool
from .queries import Reader


@dataclass(frozen=True)
class Limits:
    seconds: float = 30.0
    render_seconds: float = RENDER_SECONDS
    slots: int = 2
    wait_seconds: float = 5.0
    max_rows: int = 500
    max_columns: int = 100
    max_cell: int = 1000
    max_chars: int = 2_000_000
    max_query_chars: int = 100_000


@dataclass
class SqlResult:
    columns: list[str]
    rows: list[tuple]
    seconds: float
    notes: list[str] = field(default_factory=list)  # what was cut, in words

    @property
    def truncated(self) -> bool:
        return bool(self.notes)


class Busy(PrefcleanError):
    """Every SQL-box slot is taken."""


def _interrupt_at_deadline(con: duckdb.DuckDBPyConnection, seconds: float, ended: threading.Event) -> None:
    """A runaway query cannot hold its slot. Interrupts again until the query ends: DuckDB drops an interrupt
    that lands between two statements (or before the result is fetched), and the next part would then run on."""
    if ended.wait(seconds):
        return
    while not ended.is_set():
        try:
            con.interrupt()
        except duckdb.Error:
            pass
        ended.wait(0.1)


def run_sql(r: Reader, sql: str, limits: Limits = Limits()) -> SqlResult:
    """Run one ad-hoc query on the locked-down connection; refusals come back as QueryRefused."""
    ended = threading.Event()
    threading.Thread(target=_interrupt_at_deadline, args=(r.con, limits.seconds, ended), daemon=True).start()
    start = time.perf_counter()
    notes: list[str] = []
    try:
        rel = r.con.sql(sql)
        if rel is None:
            return SqlResult([], [], time.perf_counter() - start)
        names = list(rel.columns)
        shown = names[:limits.max_columns]
        if len(names) > len(shown):
            notes.append(f"the first {len(shown)} of {len(names)} columns are shown")
        # every cell as DuckDB prints it, cut in DuckDB: a huge value never reaches this process whole
        cells = ", ".join(f"left(cast(#{i} as varchar), {limits.max_cell + 1}) as c{i}" for i in range(1, len(shown) + 1))
        capped = rel.query("sql_box_result", f"select {cells} from sql_box_result limit {limits.max_rows + 1}")
        rows, chars = [], 0
        with capped.to_arrow_reader(batch_size=64) as reader:
            for batch in reader:
                for row in zip(*(column.to_pylist() for column in batch.columns)):
                    chars += sum(len(v) for v in row if v is not None)
                    if chars > limits.max_chars:
                        notes.append(f"the first {len(rows):,} rows are shown: the result is larger than "
                                     f"{limits.max_chars:,} characters")
                        break
                    rows.append(row)
                else:
                    continue
                break
    except duckdb.InterruptException:
        raise PrefcleanError(f"query stopped at its time limit ({limits.seconds:g}s)") from None
    except duckdb.Error as exc:
        raise explain_error(exc) from None
    finally:
        ended.set()
    if len(rows) > limits.max_rows:
        rows = rows[:limits.max_rows]
        notes.append(f"the first {limits.max_rows:,} rows are shown: the query returned more")
    if notes:
        notes.append("`prefclean sql -o result.parquet \"...\"` writes the whole result")
    return SqlResult(shown, rows, time.perf_counter() - start, notes)


class SqlBox:
    """The slots, threads and sandbox processes the SQL box runs queries with; one per app."""

    def __init__(self, project: Project, limits: Limits = Limits()):
        self.project, self.limits = project, limits
        self._threads = ThreadPoolExecutor(limits.slots, thread_name_prefix="sql-box")
        self._renderers = RenderPool(limits.slots, limits.render_seconds)
        self._slots: asyncio.Semaphore | None = None

    async def run(self, text: str) -> SqlResult:
        loop = asyncio.get_running_loop()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limits.slots)
        slots = self._slots
        try:
            await asyncio.wait_for(slots.acquire(), self.limits.wait_seconds)
        except asyncio.TimeoutError:
            raise Busy(f"the SQL box is already running {self.limits.slots} queries; try again in a moment") from None
        try:
            work = self._threads.submit(self._run, text)
        except BaseException:
            slots.release()
            raise
        def free(_) -> None:  # when the query really ends, even if this request was abandoned before
            try:
                loop.call_soon_threadsafe(slots.release)
            except RuntimeError:  # the loop has closed: the server is stopping
                pass

        work.add_done_callback(free)
        return await asyncio.wrap_future(work)

    def _run(self, text: str) -> SqlResult:
        from ..sqlshell import render_query

        with Reader.open(self.project.warehouse) as reader:
            sql = render_query(self.project, text, self._renderers, reader.con)
            return run_sql(reader, sql, self.limits)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._renderers.close()
