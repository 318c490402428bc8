"""The judgment cache's own contract: writes handed to the writer thread are seen by the next look-up,
survive close, and a failed write is reported, not lost silently."""

from __future__ import annotations

import time

import duckdb
import pytest

from prefclean.judge.cache import JudgmentCache


def judgment(key: str) -> dict:
    return {"key": key, "judge": "j", "engine": "openai", "model": "m", "task": "ultrafeedback", "aspect": None,
            "ratings": [4, 2], "rationales": ["good", "weak"], "winner": 1, "raw": "Rating: 4", "prompt_tokens": 10,
            "completion_tokens": 5, "latency_ms": 50.5}


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
    cache.store_later([{**judgment("bad"), "ratings": "not a list"}], [])
    with pytest.raises(Exception):
        cache.wait()
    cache.store_later([{**judgment("bad"), "ratings": "not a list"}], [])
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
    assert "judgment_cache" not in late.state and not late.closers
