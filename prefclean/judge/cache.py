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
import numpy as np
import pyarrow as pa

from ..errors import JudgeError
from ..migrations import Migrations
from ..warehouse import transaction
from .arrays import from_numpy, strings, valid
from .jsonrows import json_line, table_from_json_lines
from .keyindex import NO_ROWID, KeyIndex
from .keys import key_hash_sql, key_hashes, key_hashes_of
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


@MIGRATIONS.step
def key_index(con: duckdb.DuckDBPyConnection) -> None:
    """Keys from a row's inputs (keys.py): each judgment keeps its prompt's key too (NULL in older rows, whose
    key is their prompt's), and both keys' 64-bit hashes, which the in-memory key index (keyindex.py) is read
    from. Older rows get their key's hash here, so an older cache answers as before."""
    con.execute("alter table judgments add column if not exists prompt_key varchar")
    con.execute("alter table judgments add column if not exists key_hash ubigint")
    con.execute("alter table judgments add column if not exists prompt_hash ubigint")
    con.execute(f"update judgments set key_hash = {key_hash_sql('key')}")


@MIGRATIONS.step
def keys_kept_unique_by_the_store(con: duckdb.DuckDBPyConnection) -> None:
    """The judgments table without DuckDB's PRIMARY KEY on `key` (issue 16 §6). Its ART index made every insert
    dearer as the cache grew and was written out again at each checkpoint: a store of 2,000 answers took ~54 ms
    into 100k judgments and 107-144 ms into 1M, against ~40 ms flat without it (bench/cache_growth.py), and a
    10M-judgment index would not fit the cache's memory limit. One row per key is now the store's rule, kept
    through the key index (`JudgmentCache.store`). Rows are copied in their order: a rebuild still reads them in
    the order they were stored."""
    columns = ("key, judge, engine, model, task, aspect, ratings, rationales, winner, raw, prompt_tokens, "
               "completion_tokens, latency_ms, created_at, prompt_key, key_hash, prompt_hash")
    con.execute("""create table judgments_kept (
        key varchar not null, judge varchar, engine varchar, model varchar, task varchar, aspect varchar,
        ratings integer[], rationales varchar[], winner integer, raw varchar,
        prompt_tokens integer, completion_tokens integer, latency_ms double, created_at timestamp default now(),
        prompt_key varchar, key_hash ubigint, prompt_hash ubigint)""")
    con.execute(f"insert into judgments_kept ({columns}) select {columns} from judgments")
    con.execute("drop table judgments")
    con.execute("alter table judgments_kept rename to judgments")


CACHE_MEMORY_LIMIT = "512MB"
RUN_GAP = 2048  # rowids further apart than this (a DuckDB vector) start another run of a look-up's hits
RUNS = 8  # hits in at most this many runs are read by rowid range; more, row group by row group
ROW_GROUP = 122_880  # DuckDB's rows per row group


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
        self._index: KeyIndex | None = None  # keys' hashes, read by the first look-up (keyindex.py)
        self._prompts: KeyIndex | None = None  # prompt keys' hashes, read by the first look-up of prompt keys
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="prefclean-judgment-cache")
        self._writes: list[Future] = []
        self._writes_lock = threading.Lock()

    def lookup(self, keys: list[str], prompts: bool = False) -> dict[str, dict]:
        """Cached judgments for these keys (their cached columns, for `record.from_cache`); `prompts`: the keys
        are prompt keys (keys.py), matching a judgment's prompt key or an older judgment's key."""
        table, matched = self.lookup_table(keys, ", ".join(CACHE_NAMES), prompts=prompts)
        rows = table.to_pylist() if table.num_rows else []
        return {key: row for key, row in zip(matched, rows)}

    def lookup_table(self, keys: list[str], select: str, params: list | None = None, *,
                     prompts: bool = False) -> tuple[pa.Table, list[str]]:
        """`answers` for a list of distinct keys: the table's rows one per key found, and the keys they answer,
        in the same order."""
        if not keys:
            return pa.table({}), []
        table, at = self.answers(strings(keys), select, params, prompts=prompts)
        found = np.flatnonzero(at >= 0)
        return table.take(from_numpy(at[found])), [keys[i] for i in found.tolist()]

    def answers(self, keys: pa.Array, select: str, params: list | None = None, *,
                prompts: bool = False) -> tuple[pa.Table, np.ndarray]:
        """The cached judgments of these keys (a string array; a NULL asks nothing) as an Arrow table of `select`
        (SQL over the judgments table, with `params`), and for each key the row of that table that answers it, or
        -1: a batch's cached rows go from DuckDB to the judge's result without a Python object per row. The key
        index (see keyindex.py) tells which keys are cached: keys it does not hold cost no query at all."""
        at = np.full(len(keys), -1, np.int64)
        present = np.flatnonzero(valid(keys))
        if not len(present):
            return pa.table({}), at
        asked = keys if len(present) == len(keys) else keys.take(from_numpy(present))
        self.wait()
        with self._lock:
            cur = self._con.cursor()  # raises on a cache closed with its build
            try:
                hashes = key_hashes_of(asked)
                positions, rowids = self._key_index(cur).candidates(hashes)
                if prompts:  # and by prompt key: rowids -2 - r (see _fetch)
                    more, more_rowids = self._prompt_index(cur).candidates(hashes)
                    positions, rowids = np.concatenate([positions, more]), np.concatenate([rowids, more_rowids])
                if not len(positions):
                    return pa.table({}), at
                table, found = self._fetch(cur, asked, positions, rowids, select, params or [], prompts)
            except duckdb.Error as exc:  # a file damaged past what opening it read
                raise cache_unusable(self.path, exc) from None
            finally:
                cur.close()
        at[present] = found
        return table, at

    def _key_index(self, cur) -> KeyIndex:
        if self._index is None:
            found = cur.execute("select key_hash, rowid from judgments").fetchnumpy()
            self._index = KeyIndex(np.asarray(found["key_hash"], dtype=np.uint64),
                                   np.asarray(found["rowid"], dtype=np.int64))
        return self._index

    def _prompt_index(self, cur) -> KeyIndex:
        """The prompt keys' index, read only by a build that looks prompt keys up (one whose rows are not all
        cached): a fully cached rebuild never needs it."""
        if self._prompts is None:
            found = cur.execute("select prompt_hash, -2 - rowid as rowid from judgments where prompt_hash is not null"
                                ).fetchnumpy()
            rowids = np.asarray(found["rowid"], dtype=np.int64)
            self._prompts = KeyIndex(np.asarray(found["prompt_hash"], dtype=np.uint64), rowids)
            self._prompts.max_rowid = int(-2 - rowids.min()) if len(rowids) else -1
        return self._prompts

    def _fetch(self, cur, keys: pa.Array, positions, rowids, select: str, params: list,
               prompts: bool) -> tuple[pa.Table, np.ndarray]:
        """The rows of these candidates (rowids >= 0: by key's hash; <= -2: by prompt key's hash, rowid -2 - r;
        NO_ROWID: stored this build), checked against the keys they are candidates for; for each key, its row."""
        matched_on = ["_key", "_prompt_key"] if prompts else ["_key"]  # what `_match` compares
        select = f"key as _key, {'prompt_key as _prompt_key, ' if prompts else ''}{select}"
        by_prompt = rowids <= -2
        known = np.where(by_prompt, -2 - rowids, rowids)
        near = np.unique(known[known >= 0])
        runs = np.split(near, np.flatnonzero(np.diff(near) > RUN_GAP) + 1) if len(near) else []
        parts: list[pa.Table] = []
        if len(runs) <= RUNS:  # near one another (a rebuild reads them in the order it stored them)
            for run in runs:
                lo, hi = int(run[0]), int(run[-1])
                if hi - lo < 4 * len(run) + RUN_GAP:  # dense: the whole range (`_match` keeps the rows asked for)
                    parts.append(self._query(cur, "rowid between ? and ?", [lo, hi], select, params))
                else:
                    parts.append(self._query(cur, "rowid between ? and ? and rowid in (select unnest(?::bigint[]))",
                                             [lo, hi, run.tolist()], select, params))
        else:  # scattered: a query per row group that holds some (each scans one row group, not the table)
            groups = np.split(near, np.flatnonzero(np.diff(near // ROW_GROUP)) + 1)
            for group in groups:
                parts.append(self._query(cur, "rowid between ? and ? and rowid in (select unnest(?::bigint[]))",
                                         [int(group[0]), int(group[-1]), group.tolist()], select, params))
        unfetched = np.unique(positions[rowids == NO_ROWID])
        if len(unfetched):
            parts.append(self._by_key(cur, keys.take(from_numpy(unfetched)), select, params))
        table = _concat(parts)
        found = _match(table, keys, prompts)
        moved = np.setdiff1d(np.unique(positions[found[positions] < 0]), unfetched)
        if len(moved):  # candidates whose rowid no longer holds them (or a hash shared by another key)
            again = self._by_key(cur, keys.take(from_numpy(moved)), select, params)
            if again.num_rows:  # rows moved: read the indexes again next time
                self._index = self._prompts = None
                table = _concat([table, again])
                found = _match(table, keys, prompts)
        return table.drop_columns(matched_on), found

    def _query(self, cur, where: str, where_params: list, select: str, params: list) -> pa.Table:
        return cur.sql(f"select {select} from judgments where {where}",
                       params=params + where_params).to_arrow_table()

    def _by_key(self, cur, keys: pa.Array, select: str, params: list) -> pa.Table:
        """Rows by their keys, for the few the key index has no rowid for: a semi join, which scans the table
        (an IN list of constants would be an index scan, but at 10M keys it pins more of the index than the
        cache's memory limit allows)."""
        return self._query(cur, "key in (select unnest(?::varchar[]))", [keys.to_pylist()], select, params)

    def store(self, judgments: list[Judgment], calls: list[dict]) -> None:
        """Insert successful judgments, replacing the answers of keys already stored, and the call log, in one
        transaction.

        One row per key is kept here, not by a PRIMARY KEY (see `keys_kept_unique_by_the_store`): the key index
        says which of these keys may be stored already, and only their rows are deleted before the insert. A
        cold build's keys are all new, so its stores are plain INSERTs whatever the cache's size."""
        if not judgments and not calls:
            return
        with self._lock:
            cur = self._con.cursor()
            try:
                with transaction(cur):
                    if judgments:
                        judgments = list({j.key: j for j in judgments}.values())  # a key twice: its last answer
                        self._delete_stored(cur, [j.key for j in judgments])
                        rows = [json_line(j.cache_row()) for j in judgments]
                        cur.register("new_judgments", table_from_json_lines(rows, CACHE_SCHEMA))
                        cur.execute(f"insert into judgments ({', '.join(CACHE_NAMES)}, key_hash, prompt_hash) "
                                    f"select {', '.join(CACHE_NAMES)}, {key_hash_sql('key')}, "
                                    f"{key_hash_sql('prompt_key')} from new_judgments")
                    if calls:
                        cur.register("new_calls", table_from_json_lines(list(map(json_line, calls)), CALL_SCHEMA))
                        cur.execute(f"insert into calls ({', '.join(CALL_SCHEMA.names)}) select * from new_calls")
                if judgments:  # after the commit: inside its transaction, DuckDB gives new rows provisional rowids
                    try:
                        self._index_stored(cur, judgments)
                    except BaseException:  # the indexes would miss these rows: read them again when next needed
                        self._index = self._prompts = None
                        raise
            finally:
                cur.close()

    def _delete_stored(self, cur, keys: list[str]) -> None:
        """Delete the rows of those `keys` that are stored already (a re-judged row: --refresh-judgments, an
        answer collected again). The key index names the candidates and their rowids; a candidate is deleted by
        rowid and key together. A key with candidates none of which held it (its row moved at a checkpoint, a
        rowid not known) is deleted by key, which scans the table: rare, and never in a cold build. Found there, its
        row moved (a checkpoint that drops emptied row groups moves every row after them, as a --refresh-judgments
        build's deletes do): the indexes are read again by the next store or look-up, or every later store of an
        index this stale (a refresh looks nothing up) would scan the table too."""
        positions, rowids = self._key_index(cur).candidates(key_hashes(keys))
        if not len(positions):
            return
        candidates = sorted({keys[i] for i in positions.tolist()})
        known = np.unique(rowids[rowids >= 0])
        deleted: set[str] = set()
        if len(known):
            deleted = {key for (key,) in cur.execute(
                "delete from judgments where rowid between ? and ? and rowid in (select unnest(?::bigint[])) "
                "and key in (select unnest(?::varchar[])) returning key",
                [int(known[0]), int(known[-1]), known.tolist(), candidates]).fetchall()}
        elsewhere = [k for k in candidates if k not in deleted]
        if elsewhere and cur.execute("delete from judgments where key in (select unnest(?::varchar[])) returning key",
                                     [elsewhere]).fetchall():
            self._index = self._prompts = None

    def _index_stored(self, cur, judgments: list[Judgment]) -> None:
        """Add the rows just stored (and committed) to the key indexes read so far: their rowids are those past
        the last one the key index knows; a key whose rowid is not found is fetched by key."""
        if self._index is None and self._prompts is None:
            return
        since = max(i.max_rowid for i in (self._index, self._prompts) if i is not None)
        tail = cur.execute("select key_hash, prompt_hash, rowid from judgments where rowid > ?", [since]).fetchnumpy()
        rowids = np.asarray(tail["rowid"], dtype=np.int64)
        key_h = np.asarray(np.ma.getdata(tail["key_hash"]), dtype=np.uint64)
        if self._prompts is not None:
            prompt_h = tail["prompt_hash"]
            has_prompt = ~np.ma.getmaskarray(prompt_h)
            self._prompts.add(np.asarray(np.ma.getdata(prompt_h)[has_prompt], dtype=np.uint64),
                              -2 - rowids[has_prompt], rowids.max() if len(rowids) else -1)
        if self._index is None:
            return
        self._index.add(key_h, rowids)
        # A stored key the tail did not show is one DuckDB put below the last rowid known: fetched by its key (one
        # the index has a candidate for already is found there, or found moved and the index read again).
        stored = np.setdiff1d(key_hashes([j.key for j in judgments]), key_h)
        if len(stored):
            positions, _ = self._index.candidates(stored)
            unknown = np.setdiff1d(np.arange(len(stored)), positions)
            self._index.add(stored[unknown], np.full(len(unknown), NO_ROWID, np.int64))

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


def _concat(parts: list[pa.Table]) -> pa.Table | None:
    if not parts:
        return None
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def _match(table: pa.Table | None, keys: pa.Array, prompts: bool) -> np.ndarray:
    """For each key, the first row of `table` that answers it (by its key, or with `prompts` its prompt key too),
    or -1."""
    import pyarrow.compute as pc  # imported on first use (see arrays.py)
    if table is None or not table.num_rows:
        return np.full(len(keys), -1, np.int64)
    at = pc.index_in(keys, value_set=table.column("_key").combine_chunks())
    if prompts:
        at = pc.coalesce(at, pc.index_in(keys, value_set=table.column("_prompt_key").combine_chunks()))
    values = np.frombuffer(at.buffers()[1], np.int32, count=len(at), offset=at.offset * 4).astype(np.int64)
    return np.where(valid(at), values, -1)
