"""The judgment cache's own contract: writes handed to the writer thread are seen by the next look-up,
survive close, and a failed write is reported, not lost silently."""

from __future__ import annotations

import time

import duckdb
import pytest

from prefclean.judge.cache import MIGRATIONS, JudgmentCache
from prefclean.judge.record import RESULT_NAMES, Call, Judgment, columns


def judgment(key: str, **changes) -> Judgment:
    return Judgment(**{"key": key, "judge": "j", "engine": "openai", "model": "m", "task": "ultrafeedback",
                       "aspect": "honesty", "ratings": [4, 2], "rationales": ["good", "weak"], "winner": 1,
                       "raw": "Rating: 4", "prompt_tokens": 10, "completion_tokens": 5, "latency_ms": 50.5, **changes})


def call(key: str) -> dict:
    return {"key": key, "judge": "j", "model": "m", "status": "ok", "error": None, "http_status": 200,
            "latency_ms": 50.5, "prompt_tokens": 10, "completion_tokens": 5, "attempt": 1}


def test_a_lookup_sees_every_write_handed_over_before_it(tmp_path):
    cache = JudgmentCache(tmp_path / "judgments.duckdb")
    for i in range(20):
        cache.store_later([judgment(f"k{i}")], [call(f"k{i}")])
    found = cache.lookup([f"k{i}" for i in range(25)])
    assert sorted(found) == sorted(f"k{i}" for i in range(20))
    assert found["k3"]["ratings"] == [4, 2] and found["k3"]["rationales"] == ["good", "weak"]
    cache.close()


def test_a_key_stored_again_replaces_its_answer_and_its_call_log_is_kept_once(tmp_path):
    """Stores go in as a plain INSERT (INSERT OR REPLACE costs in proportion to the table); one that meets a key
    already there is redone as a replace, in one transaction: nothing of the failed try is left behind."""
    cache = JudgmentCache(tmp_path / "judgments.duckdb")
    cache.store([judgment("a"), judgment("b")], [call("a"), call("b")])
    assert cache.lookup(["a"])["a"]["ratings"] == [4, 2]
    cache.store([judgment("a", ratings=[1, 5], winner=2), judgment("c")], [call("a"), call("c")])
    found = cache.lookup(["a", "b", "c"])
    assert found["a"]["ratings"] == [1, 5] and found["b"]["ratings"] == [4, 2] and "c" in found
    cache.close()
    con = duckdb.connect(str(tmp_path / "judgments.duckdb"), read_only=True)
    assert con.execute("select count(*), count(distinct key) from judgments").fetchone() == (3, 3)
    assert con.execute("select key, count(*) from calls group by key order by key").fetchall() == [
        ("a", 2), ("b", 1), ("c", 1)]


def test_close_waits_for_pending_writes(tmp_path):
    path = tmp_path / "judgments.duckdb"
    cache = JudgmentCache(path)
    cache.store_later([judgment(f"k{i}") for i in range(500)], [call(f"k{i}") for i in range(500)])
    cache.close()
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("select count(*) from judgments").fetchone()[0] == 500
    assert con.execute("select count(*) from calls").fetchone()[0] == 500
    con.close()


def test_a_failed_write_is_raised_by_wait_and_by_the_next_write(tmp_path):
    cache = JudgmentCache(tmp_path / "judgments.duckdb")
    cache.store_later([judgment("bad", ratings="not a list")], [])
    with pytest.raises(Exception):
        cache.wait()
    cache.store_later([judgment("bad", ratings="not a list")], [])
    with pytest.raises(Exception):
        for _ in range(100):  # raised by the first store_later that finds it done
            cache.store_later([], [])
            time.sleep(0.01)
    cache.close()


def test_a_warm_up_that_finishes_after_its_build_opens_nothing(make_project):
    """A short build can end while the judge's warm-up is still importing: the cache it then asks for must
    not be opened (a DuckDB connection left in a daemon thread aborted the process at exit)."""
    from prefclean.errors import JudgeError
    from prefclean.judge.udf import judgment_cache
    from prefclean.project import load_project
    from prefclean.udf import RunContext

    root = make_project(models={"m": "select 1 as x"})
    ctx = RunContext(project=load_project(root))
    cache = judgment_cache(ctx)
    assert judgment_cache(ctx) is cache
    ctx.close()
    with pytest.raises(duckdb.Error):  # closed with the build
        cache.lookup(["k"])
    late = RunContext(project=load_project(root))
    late.close()
    with pytest.raises(JudgeError, match="the build is over"):
        judgment_cache(late)
    assert "judgment_cache" not in late.state and not late.closers and not late.file_closers


# The tables exactly as prefclean 0.1 (before migrations) created them: a cache file written by that version.
LEGACY_CACHE_DDL = [
    """create table judgments (
        key varchar primary key, judge varchar, engine varchar, model varchar, task varchar, aspect varchar,
        ratings integer[], rationales varchar[], winner integer, raw varchar,
        prompt_tokens integer, completion_tokens integer, latency_ms double, created_at timestamp default now())""",
    """create table calls (
        key varchar, judge varchar, model varchar, status varchar, error varchar, http_status integer,
        latency_ms double, prompt_tokens integer, completion_tokens integer, attempt integer,
        called_at timestamp default now())""",
]
LEGACY_JUDGMENT_COLUMNS = ("key, judge, engine, model, task, aspect, ratings, rationales, winner, raw, prompt_tokens, "
                           "completion_tokens, latency_ms, created_at")


def test_a_cache_written_before_migrations_is_migrated_and_still_answers(make_project, run_cli, fake_judge):
    from judge_fixtures import build, judge_note, judge_project, judged

    rows = [{"id": i, "instruction": f"q{i}", "generations": [f"a [[rate=4]] {i}", f"b [[rate=2]] {i}"]}
            for i in range(6)]
    root = judge_project(make_project, fake_judge, rows)
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 6
    # Rewrite the cache as the old version left it: the same judgments, the old tables, no migrations table.
    path = root / "target" / "judgments.duckdb"
    old = duckdb.connect(str(path), read_only=True)
    stored = old.execute(f"select {LEGACY_JUDGMENT_COLUMNS} from judgments").fetchall()
    old.close()
    path.unlink()
    legacy = duckdb.connect(str(path))
    for statement in LEGACY_CACHE_DDL:
        legacy.execute(statement)
    legacy.executemany(f"insert into judgments ({LEGACY_JUDGMENT_COLUMNS}) values "
                       "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", stored)
    legacy.close()

    result, _ = build(run_cli, root, "--full-refresh")
    assert fake_judge.stats()["requests"] == 6  # nothing sent again
    assert judge_note(result.output)["cached"] == 6
    assert all(r["j"]["cached"] and r["j"]["ratings"] == [4, 2] for r in judged(root))
    con = duckdb.connect(str(path), read_only=True)
    assert [name for (name,) in con.execute("select name from migrations order by version").fetchall()] == \
        [name for name, _ in MIGRATIONS.steps]
    con.close()


def test_the_migrated_tables_have_exactly_the_records_columns(tmp_path):
    """The steps are history and the record is today's shape: they must agree, column for column."""
    cache = JudgmentCache(tmp_path / "judgments.duckdb")
    cache.close()
    con = duckdb.connect(str(tmp_path / "judgments.duckdb"), read_only=True)
    for table, record, extra in (("judgments", Judgment, {"created_at", "key_hash", "prompt_hash"}),  # the key index's
                                 ("calls", Call, {"called_at"})):
        have = {name: type_ for name, type_, *_ in con.execute(f"describe {table}").fetchall()}
        want = {c.name: c.sql for c in columns(record) if c.cached}
        assert {k: v for k, v in have.items() if k not in extra} == want, table
    con.close()


def test_the_readme_lists_every_field_of_the_judgment_struct():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("`judge()` calls the `prefclean_judge` UDF"):]
    paragraph = paragraph[:paragraph.index("Tasks:")]
    import re

    listed = [name.split()[0] for name in re.findall(r"`([a-z_]+(?: [A-Z\[\]]+)?)`", paragraph)]
    assert listed[1:] == list(RESULT_NAMES)  # (the first is prefclean_judge)
