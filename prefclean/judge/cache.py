"""The judgment cache: a DuckDB file beside the warehouse (target/judgments.duckdb) you can query with SQL.

`judgments` holds one row per successful judgment, keyed by a hash of engine, model, rendered prompt and
generation parameters, so changed input can never meet an old judgment. Failed judgments are not stored:
the next build retries exactly those. `calls` logs every request (latency, tokens, status). Their columns
are the records in record.py; the tables are made by the numbered steps below (see migrations.py), so a
cache written by an older prefclean keeps answering after the schema changes.
"""

from __future__ import annotations

import re
import shlex
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb

from ..errors import JudgeError
from ..migrations import Migrations
from ..warehouse import transaction
from .jsonrows import json_line, table_from_json_lines
from .record import CACHE_NAMES, CACHE_SCHEMA, CALL_SCHEMA, Judgment

MIGRATIONS = Migrations("the judgment cache")


@MIGRATIONS.step
def initial(con: duckdb.DuckDBPyConnection) -> None:
    """The tables as prefclean 0.1 made them (before the cache had migrations)."""
    con.execute("""create table if not exists judgments (
        key varchar primary key, judge varchar, engine varchar, model varchar, task varchar, aspect varchar,
        ratings integer[], rationales varchar[], winner integer, raw varchar,
        prompt_tokens integer, completion_tokens integer, latency_ms double, created_at timestamp default now())""")
    con.execute("""create table if not exists calls (
        key varchar, judge varchar, model varchar, status varchar, error varchar, http_status integer,
        latency_ms double, prompt_tokens integer, completion_tokens integer, attempt integer,
        called_at timestamp default now())""")


@MIGRATIONS.step
def call_cost(con: duckdb.DuckDBPyConnection) -> None:
    """What each request cost at the judge's `price` (issue 15: cost accounting)."""
    con.execute("alter table calls add column if not exists cost_usd double")


@MIGRATIONS.step
def provider_batches(con: duckdb.DuckDBPyConnection) -> None:
    """Provider batches (the openai-batch engine, batching.py): each batch submitted and each request line
    in it, so a build stopped after submitting never submits the same requests twice."""
    con.execute("""create table batches (
        batch_id varchar primary key, judge varchar, input_file_id varchar, status varchar, requests integer,
        completed integer, failed integer, output_file_id varchar, error_file_id varchar, errors varchar,
        submitted_at timestamp default now(), collected_at timestamp)""")
    con.execute("""create table batch_requests (
        custom_id varchar, batch_id varchar, judge varchar, task varchar, aspect varchar, n integer, line varchar,
        outcome varchar, primary key (custom_id, batch_id))""")


CACHE_MEMORY_LIMIT = "512MB"


def cache_unusable(path: Path, exc: Exception) -> JudgeError:
    """One line for a cache that cannot be opened or read: judging without it would fail every row (and
    empty the cleaned export), so the judging model fails instead and everything built before stays."""
    detail = " ".join(str(exc).split())
    lock = re.search(r"Conflicting lock is held in (.*?) \(PID (\d+)\)", detail)
    if lock:
        return JudgeError(f"the judgment cache {path} is in use by another process (PID {lock[2]}, {lock[1]}): "
                          "wait for it to finish or stop it, then build again")
    if "Permission denied" in detail:
        return JudgeError(f"the judgment cache {path} cannot be opened: permission denied; check the owner and "
                          "mode of the file and its folder")
    aside = f"mv {shlex.quote(str(path))} {shlex.quote(str(path.with_name(path.name + '.broken')))}"
    if "version number" in detail:
        return JudgeError(f"the judgment cache {path} was written by another DuckDB version ({detail}): build with "
                          f"that version, or move it aside ({aside}) and build again (the judge is then asked again "
                          "for every judgment)")
    return JudgeError(f"the judgment cache {path} cannot be read ({detail}); it is damaged or not a DuckDB file: "
                      f"move it aside ({aside}) and build again (the judge is then asked again for every judgment)")


class JudgmentCache:
    """Thread-safe: DuckDB calls the judge UDF from several threads at once.

    Writes go through one writer thread (`store_later`), so a judge batch goes on while DuckDB commits:
    the write after a batch's last answer (~14 ms) overlaps with the batch's result and the model's table
    write instead of delaying both. Look-ups wait for the writes handed over before them."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Its own DuckDB instance would default to 80% of RAM: its buffers then grew ~1 MiB per 1,000 stored
        # judgments (a million pairs: +1 GB). Capped, it evicts to disk and stays flat.
        try:
            self._con = duckdb.connect(str(path))
        except duckdb.Error as exc:  # locked by another process, or not a DuckDB file
            raise cache_unusable(path, exc) from None
        self._lock = threading.Lock()
        try:
            self._con.execute(f"set memory_limit = '{CACHE_MEMORY_LIMIT}'")  # a SET, so other opens need no config
            MIGRATIONS.migrate(self._con)  # a cache from an older prefclean is brought up to date
        except BaseException as exc:
            self._con.close()
            if isinstance(exc, duckdb.Error):  # damaged past its header
                raise cache_unusable(path, exc) from None
            raise
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="prefclean-judgment-cache")
        self._writes: list[Future] = []
        self._writes_lock = threading.Lock()

    def lookup(self, keys: list[str]) -> dict[str, dict]:
        """Cached judgments for these keys (their cached columns, for `record.from_cache`), in one query
        (never one row at a time). The keys go in as a list parameter: building an Arrow table of them would
        import pandas (see jsonrows) before the first requests of a build could leave."""
        if not keys:
            return {}
        self.wait()
        with self._lock:
            cur = self._con.cursor()
            try:
                rows = cur.execute(
                    f"select j.{', j.'.join(CACHE_NAMES)} from judgments j "
                    "semi join (select unnest(?::varchar[]) as key) w on j.key = w.key", [keys]).fetchall()
            except duckdb.Error as exc:  # a file damaged past what opening it read
                raise cache_unusable(self.path, exc) from None
            finally:
                cur.close()
        at = CACHE_NAMES.index("key")
        return {row[at]: dict(zip(CACHE_NAMES, row)) for row in rows}

    def store(self, judgments: list[Judgment], calls: list[dict]) -> None:
        """Insert successful judgments (replacing same keys) and the call log, in one transaction."""
        if not judgments and not calls:
            return
        with self._lock:
            cur = self._con.cursor()
            try:
                with transaction(cur):
                    if judgments:
                        rows = [json_line(j.cache_row()) for j in judgments]
                        cur.register("new_judgments", table_from_json_lines(rows, CACHE_SCHEMA))
                        cur.execute(f"insert or replace into judgments ({', '.join(CACHE_NAMES)}) "
                                    f"select {', '.join(CACHE_NAMES)} from new_judgments")
                    if calls:
                        cur.register("new_calls", table_from_json_lines(list(map(json_line, calls)), CALL_SCHEMA))
                        cur.execute(f"insert into calls ({', '.join(CALL_SCHEMA.names)}) select * from new_calls")
            finally:
                cur.close()

    def store_later(self, judgments: list[Judgment], calls: list[dict]) -> None:
        """`store` in the writer thread. An earlier write that failed raises here."""
        with self._writes_lock:
            done = [f for f in self._writes if f.done()]
            self._writes = [f for f in self._writes if not f.done()]
            if judgments or calls:
                self._writes.append(self._writer.submit(self.store, list(judgments), list(calls)))
        for f in done:
            f.result()

    def clock(self):
        """The cache's own clock, as `calls.called_at` records it (to tell this build's calls from earlier ones)."""
        with self._lock:
            return self._con.execute("select now()::timestamp").fetchone()[0]

    def failed_before(self, keys: list[str], before) -> set[str]:
        """Those of `keys` whose requests failed (status 'error', or an answer that could not be read) in a build
        before `before`: rows that keep failing. A build whose judge answered nothing marks its calls
        'judge_down' instead (see below)."""
        return {row[0] for row in self._calls("select distinct key from calls where status in ('error', 'unparsed') and "
                                              "called_at < ? and key in (select unnest(?::varchar[]))", [before, keys])}

    def mark_judge_down(self, keys: list[str], since) -> None:
        """This build's failed calls for `keys` are the judge's failure, not their rows': status 'judge_down'."""
        self._calls("update calls set status = 'judge_down' where status in ('error', 'unparsed') and called_at >= ? "
                    "and key in (select unnest(?::varchar[]))", [since, keys])

    def _calls(self, sql: str, params: list) -> list[tuple]:
        if not params[-1]:
            return []
        return self.execute(sql, params)

    def execute_in_transaction(self, statements: list[tuple[str, list]]) -> None:
        """Several statements, all or none (the write of a submitted batch and its lines)."""
        self.wait()
        with self._lock:
            cur = self._con.cursor()
            try:
                with transaction(cur):
                    for sql, params in statements:
                        cur.execute(sql, params)
            finally:
                cur.close()

    def execute(self, sql: str, params: list | None = None) -> list[tuple]:
        """One statement on the cache's file, after the writes handed over before it (batching.py's tables)."""
        self.wait()
        with self._lock:
            cur = self._con.cursor()
            try:
                return cur.execute(sql, params).fetchall()
            except duckdb.Error as exc:
                raise cache_unusable(self.path, exc) from None
            finally:
                cur.close()

    def wait(self) -> None:
        """Until every write handed to `store_later` is done; raises the first that failed."""
        with self._writes_lock:
            writes, self._writes = self._writes, []
        for f in writes:
            f.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._writer.shutdown()
            with self._lock:
                self._con.close()
