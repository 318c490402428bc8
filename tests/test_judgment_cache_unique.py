"""One row per key in the judgment cache, kept by the store rather than by a PRIMARY KEY (issue 16 §6: DuckDB's
ART index on the key made each store dearer as the cache grew). Whatever is stored again, in whatever order, and
whatever the key index knows of where rows are, the table holds each key once, with its last answer."""

from __future__ import annotations

import duckdb
from hypothesis import HealthCheck, given, settings, strategies as st

from prefclean.judge.cache import MIGRATIONS, JudgmentCache
from prefclean.judge.keyindex import NO_ROWID
from prefclean.judge.keys import key_hash_sql, key_hashes, request_key
from prefclean.judge.record import Judgment

KEYS = [request_key("j", [{"content": str(i)}]) for i in range(12)] + ["plain-key-a", "plain-key-b"]


def judgment(key: str, raw: str) -> Judgment:
    return Judgment(key=key, judge="j", engine="openai", model="m", task="ultrafeedback", aspect="overall",
                    ratings=[4, 2], rationales=["good", "weak"], winner=1, raw=raw, prompt_tokens=10,
                    completion_tokens=5, latency_ms=1.0)


def rows(path) -> list[tuple[str, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select key, raw from judgments order by key").fetchall()
    finally:
        con.close()


# A store: which keys (by position in KEYS, repeats allowed), and what happens to the key index before it.
STORES = st.lists(st.tuples(st.lists(st.integers(0, len(KEYS) - 1), min_size=1, max_size=6),
                            st.sampled_from(["as is", "forgotten", "rowids wrong", "rowids unknown", "looked up"])),
                  min_size=1, max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stores=STORES)
def test_every_key_is_stored_once_with_its_last_answer(tmp_path_factory, stores):
    path = tmp_path_factory.mktemp("cache") / "judgments.duckdb"
    cache = JudgmentCache(path)
    last: dict[str, str] = {}
    for number, (picked, index_state) in enumerate(stores):
        if cache._index is not None:
            if index_state == "forgotten":  # read again from the table by the next store
                cache._index = None
            elif index_state == "rowids wrong":  # as after a checkpoint moved rows: every rowid a wrong hint
                cache._index._rowids = (cache._index._rowids + 1) % max(1, len(cache._index._rowids))
            elif index_state == "rowids unknown":
                cache._index._rowids[:] = NO_ROWID
        if index_state == "looked up":
            cache.lookup(KEYS)
        batch = [judgment(KEYS[i], f"answer {number}.{j}") for j, i in enumerate(picked)]
        cache.store(batch, [])
        last.update({j.key: j.raw for j in batch})
    assert {k: r["raw"] for k, r in cache.lookup(KEYS).items()} == last
    cache.close()
    assert rows(path) == sorted(last.items())


def test_a_cache_with_the_primary_key_is_migrated_with_its_rows_in_order(tmp_path):
    path = tmp_path / "judgments.duckdb"
    con = duckdb.connect(str(path))
    steps = MIGRATIONS.steps
    con.execute("create table migrations (version integer primary key, name varchar not null, "
                "applied_at timestamp default now())")
    for version, (name, step) in enumerate(steps[:4], start=1):  # the cache as the release before this step left it
        step(con)
        con.execute("insert into migrations (version, name) values (?, ?)", [version, name])
    con.execute(f"insert into judgments (key, raw, key_hash) select key, raw, {key_hash_sql('key')} "
                "from (select 'k' || i as key, 'r' || i as raw from range(50) t(i))")
    assert con.execute("select count(*) from duckdb_constraints() where table_name = 'judgments' "
                       "and constraint_type = 'PRIMARY KEY'").fetchone()[0] == 1
    con.close()
    cache = JudgmentCache(path)
    cache.store([judgment("k7", "again")], [])
    cache.close()
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("select count(*) from duckdb_constraints() where table_name = 'judgments' "
                       "and constraint_type = 'PRIMARY KEY'").fetchone()[0] == 0
    assert con.execute("select key, raw from judgments").fetchall() == \
        [(f"k{i}", f"r{i}") for i in range(50) if i != 7] + [("k7", "again")]
    con.close()


def test_a_store_that_meets_moved_rows_reads_the_key_index_again(tmp_path):
    """A checkpoint that drops deleted row groups moves every later row (a --refresh-judgments build deletes
    the rows it stores again): the key index's rowids then all miss, and a build that only stores (a refresh
    looks nothing up) would delete each batch's old rows by a scan of the table for the rest of the build."""
    path = tmp_path / "judgments.duckdb"
    JudgmentCache(path).close()
    con = duckdb.connect(str(path))
    con.execute(f"insert into judgments (key, raw, key_hash) select key, 'a', {key_hash_sql('key')} "
                "from (select sha256(i::varchar) as key from range(250000) t(i))")
    keys = [k for (k,) in con.execute("select key from judgments order by rowid").fetchall()]
    con.close()
    cache = JudgmentCache(path)
    cache.store([judgment(k, "b") for k in keys[:130_000]], [])  # the first row groups' keys, stored again
    cache.execute("checkpoint")  # the emptied row groups go: the rows after them move down
    cache.store([judgment(keys[200_000], "c")], [])  # meets a moved row
    cache.store([judgment(keys[200_001], "c")], [])
    rest = keys[130_000:200_000]
    at = dict(cache.execute("select key, rowid from judgments where key in (select unnest(?::varchar[]))", [rest]))
    positions, rowids = cache._index.candidates(key_hashes(rest))
    assert sum(at[rest[p]] == r for p, r in zip(positions.tolist(), rowids.tolist())) == len(rest)
    assert cache.execute("select count(*), count(distinct key) from judgments") == [(250_000, 250_000)]
    cache.close()
