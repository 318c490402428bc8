"""The judgment cache: a DuckDB file beside the warehouse (target/judgments.duckdb) you can query with SQL.

`judgments` holds one row per successful judgment, keyed by a hash of engine, model, rendered prompt and
generation parameters, so changed input can never meet an old judgment. Failed judgments are not stored:
the next build retries exactly those. `calls` logs every request (latency, tokens, status).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa

from ..warehouse import transaction
from .jsonrows import json_line, table_from_json_lines

SCHEMA = [
    """create table if not exists judgments (
        key varchar primary key, judge varchar, engine varchar, model varchar, task varchar, aspect varchar,
        ratings integer[], rationales varchar[], winner integer, raw varchar,
        prompt_tokens integer, completion_tokens integer, latency_ms double, created_at timestamp default now())""",
    """create table if not exists calls (
        key varchar, judge varchar, model varchar, status varchar, error varchar, http_status integer,
        latency_ms double, prompt_tokens integer, completion_tokens integer, attempt integer,
        called_at timestamp default now())""",
]

JUDGMENT_COLUMNS = ["key", "judge", "engine", "model", "task", "aspect", "ratings", "rationales", "winner", "raw",
                    "prompt_tokens", "completion_tokens", "latency_ms"]
JUDGMENT_TYPES = pa.schema([
    ("key", pa.string()), ("judge", pa.string()), ("engine", pa.string()), ("model", pa.string()),
    ("task", pa.string()), ("aspect", pa.string()), ("ratings", pa.list_(pa.int32())),
    ("rationales", pa.list_(pa.string())), ("winner", pa.int32()), ("raw", pa.string()),
    ("prompt_tokens", pa.int32()), ("completion_tokens", pa.int32()), ("latency_ms", pa.float64()),
])
CALL_TYPES = pa.schema([
    ("key", pa.string()), ("judge", pa.string()), ("model", pa.string()), ("status", pa.string()),
    ("error", pa.string()), ("http_status", pa.int32()), ("latency_ms", pa.float64()),
    ("prompt_tokens", pa.int32()), ("completion_tokens", pa.int32()), ("attempt", pa.int32()),
])


LOOKUP_COLUMNS = ("key", "ratings", "rationales", "winner", "raw", "model", "prompt_tokens", "completion_tokens",
                  "latency_ms")
CACHE_MEMORY_LIMIT = "512MB"


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
        self._con = duckdb.connect(str(path))
        self._con.execute(f"set memory_limit = '{CACHE_MEMORY_LIMIT}'")  # a SET, so other opens need no config
        self._lock = threading.Lock()
        for statement in SCHEMA:
            self._con.execute(statement)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="prefclean-judgment-cache")
        self._writes: list[Future] = []
        self._writes_lock = threading.Lock()

    def lookup(self, keys: list[str]) -> dict[str, dict]:
        """Cached judgments for these keys, in one query (never one row at a time). The keys go in as a list
        parameter: building an Arrow table of them would import pandas (see jsonrows) before the first
        requests of a build could leave."""
        if not keys:
            return {}
        self.wait()
        with self._lock:
            cur = self._con.cursor()
            try:
                rows = cur.execute(
                    f"select j.{', j.'.join(LOOKUP_COLUMNS)} from judgments j "
                    "semi join (select unnest(?::varchar[]) as key) w on j.key = w.key", [keys]).fetchall()
            finally:
                cur.close()
        return {row[0]: dict(zip(LOOKUP_COLUMNS, row)) for row in rows}

    def store(self, judgments: list[dict], calls: list[dict]) -> None:
        """Insert successful judgments (replacing same keys) and the call log, in one transaction."""
        if not judgments and not calls:
            return
        with self._lock:
            cur = self._con.cursor()
            try:
                with transaction(cur):
                    if judgments:
                        cur.register("new_judgments", table_from_json_lines(list(map(json_line, judgments)),
                                                                            JUDGMENT_TYPES))
                        cur.execute(f"insert or replace into judgments ({', '.join(JUDGMENT_COLUMNS)}) "
                                    f"select {', '.join(JUDGMENT_COLUMNS)} from new_judgments")
                    if calls:
                        cur.register("new_calls", table_from_json_lines(list(map(json_line, calls)), CALL_TYPES))
                        cur.execute(f"insert into calls ({', '.join(CALL_TYPES.names)}) select * from new_calls")
            finally:
                cur.close()

    def store_later(self, judgments: list[dict], calls: list[dict]) -> None:
        """`store` in the writer thread. An earlier write that failed raises here."""
        with self._writes_lock:
            done = [f for f in self._writes if f.done()]
            self._writes = [f for f in self._writes if not f.done()]
            if judgments or calls:
                self._writes.append(self._writer.submit(self.store, list(judgments), list(calls)))
        for f in done:
            f.result()

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
