"""The judge UDF end to end: SQL models judged by a real OpenAI-compatible server on loopback.

Every rating comes from a `[[rate=K]]` marker in the row's text, so each assertion checks what the
judge really answered; request counts come from the server's own /stats.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from judge_fixtures import REPO, build, build_api, judge_config, judge_project, judged
from servers.fake_judge import FakeJudge


def row(i, *ratings, instruction=None):
    return {"id": i, "instruction": instruction or f"question {i}",
            "generations": [f"answer {i}.{k} [[rate={r}]]" for k, r in enumerate(ratings)]}


def ratings(root):
    return {r["id"]: r["j"]["ratings"] for r in judged(root)}


def test_ratings_and_rationales_for_one_to_n_generations(make_project, run_cli, fake_judge):
    rows = [row(1, 4), row(2, 5, 1), row(3, 2, 3, 4, 5, 1)]
    root = judge_project(make_project, fake_judge, rows)
    result = build_api(root)
    out = {r["id"]: r["j"] for r in judged(root)}
    assert out[1]["ratings"] == [4] and out[2]["ratings"] == [5, 1] and out[3]["ratings"] == [2, 3, 4, 5, 1]
    assert out[3]["rationales"] == [f"text {k} earns {r}." for k, r in enumerate([2, 3, 4, 5, 1], 1)]
    for j in out.values():
        assert j["error"] is None and j["model"] == "fake-judge" and j["judge"] == "fake"
        assert "Rating:" in j["raw"] and j["prompt_tokens"] > 0 and j["completion_tokens"] > 0
        assert j["cached"] is False and j["attempts"] == 1
    assert out[2]["winner"] == 1 and out[3]["winner"] == 4
    assert (result.judging.judged, result.judging.failed) == (3, 0)
    assert fake_judge.stats()["requests"] == 3


def test_project_udf_used_beside_the_judge(make_project, run_cli, fake_judge):
    udf_code = '''
import pyarrow.compute as pc
from prefclean import udf

@udf(params=["VARCHAR"], returns="VARCHAR")
def shout(texts):
    """Upper-case, vectorized."""
    return pc.utf8_upper(texts)
'''
    model = """{{ config(materialized='table') }}
select id, shout(instruction) as loud, {{ judge('instruction', 'generations', judge='fake') }} as j
from {{ source('pairs') }}"""
    root = judge_project(make_project, fake_judge, [row(1, 3, 5)], models={"judged": model},
                         udfs={"text_udfs": udf_code})
    build(run_cli, root)
    [r] = judged(root, "select loud, j.ratings as ratings from judged")
    assert r == {"loud": "QUESTION 1", "ratings": [3, 5]}


def test_requests_run_concurrently_within_the_judges_limit(make_project, run_cli, fake_judge):
    latency, n, concurrency = 0.1, 48, 8
    fake_judge.control(latency_ms=latency * 1000)
    root = judge_project(make_project, fake_judge, [row(i, 1 + i % 5, 2) for i in range(n)],
                         judges={"fake": judge_config(fake_judge, concurrency=concurrency)})
    _, seconds = build(run_cli, root)
    stats = fake_judge.stats()
    assert stats["requests"] == n
    assert stats["max_in_flight"] == concurrency  # concurrent, and never above the limit
    judging = stats["last_request_at"] - stats["first_request_at"] + latency
    assert judging < n * latency / 2, f"{judging:.2f}s for {n} requests: not concurrent"
    assert sorted(ratings(root).items()) == [(i, [1 + i % 5, 2]) for i in range(n)]


def test_identical_rows_are_sent_once(make_project, run_cli, fake_judge):
    rows = [{**row(0, 4, 2), "id": i} for i in range(5)] + [row(9, 1, 1)]
    root = judge_project(make_project, fake_judge, rows)
    result = build_api(root)
    assert fake_judge.stats()["requests"] == 2
    assert ratings(root) == {**{i: [4, 2] for i in range(5)}, 9: [1, 1]}
    assert result.judging.deduplicated == 4


def test_rows_beyond_one_duckdb_batch(make_project, run_cli, fake_judge):
    """2,100 rows reach the UDF in more than one call: the later call finds the first one's judgments cached."""
    rows = [{**row(i % 3, 1 + i % 3, 5), "id": i} for i in range(2100)]
    root = judge_project(make_project, fake_judge, rows)
    result = build_api(root)
    assert fake_judge.stats()["requests"] == 3
    got = judged(root, "select count(*) as n, count(distinct j.ratings) as distinct_ratings, "
                       "count(*) filter (where j.error is null) as ok from judged")
    assert got == [{"n": 2100, "distinct_ratings": 3, "ok": 2100}]
    assert result.judging.judged + result.judging.cached == 2100 and result.judging.cached > 0


def test_rows_without_input_fail_alone_without_a_request(make_project, run_cli, fake_judge):
    rows = [row(1, 5, 1), {"id": 2, "instruction": None, "generations": ["a", "b"]},
            {"id": 3, "instruction": "q", "generations": ["a", None]}, {"id": 4, "instruction": "q", "generations": []}]
    root = judge_project(make_project, fake_judge, rows)
    build(run_cli, root)
    out = {r["id"]: r["j"] for r in judged(root)}
    assert out[1]["ratings"] == [5, 1]
    assert all(out[i]["error"] == "missing instruction or generation" for i in (2, 3, 4))
    assert fake_judge.stats()["requests"] == 1


def test_cache_rerun_sends_nothing_and_changed_rows_are_rejudged(make_project, run_cli, fake_judge):
    rows = [row(i, 5, 1) for i in range(4)]
    root = judge_project(make_project, fake_judge, rows, dirname="p")
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 4
    cache = root / "target" / "judgments.duckdb"
    assert cache.exists()

    fake_judge.reset()
    result = build_api(root)
    assert fake_judge.stats()["requests"] == 0
    assert result.judging.cached == 4 and result.model("judged").judging.cached == 4
    assert all(r["j"]["cached"] and r["j"]["ratings"] == [5, 1] for r in judged(root))

    # Same ids, one text changed: that row is judged again (never the stale answer), the rest stay cached.
    rows[2] = {**rows[2], "generations": ["answer 2.0 [[rate=2]]", "answer 2.1 [[rate=4]]"]}
    judge_project(make_project, fake_judge, rows, dirname="p")
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 1
    out = {r["id"]: r["j"] for r in judged(root)}
    assert out[2]["ratings"] == [2, 4] and out[2]["cached"] is False
    assert [out[i]["cached"] for i in (0, 1, 3)] == [True, True, True]

    fake_judge.reset()
    build(run_cli, root, "--refresh-judgments")
    assert fake_judge.stats()["requests"] == 4

    # The cache is a table a user can query.
    import duckdb

    con = duckdb.connect(str(cache), read_only=True)
    try:
        stored = con.execute("select count(*), count(distinct key), min(judge), bool_and(raw like '%Rating:%') "
                             "from judgments").fetchone()
        calls = con.execute("select count(*), sum(prompt_tokens) > 0 from calls").fetchone()
    finally:
        con.close()
    assert stored == (5, 5, "fake", True)
    assert calls == (4 + 1 + 4, True)


def test_server_errors_are_retried(make_project, run_cli, fake_judge):
    fake_judge.control(fail_first_n=2, fail_status=503)
    root = judge_project(make_project, fake_judge, [row(i, 3, 4) for i in range(3)])
    result = build_api(root)
    assert all(r["j"]["error"] is None and r["j"]["ratings"] == [3, 4] for r in judged(root))
    stats = fake_judge.stats()
    assert stats["requests"] == 5 and stats["by_status"] == {"503": 2, "200": 3}
    assert result.judging.retries == 2


def test_a_burst_of_server_errors_does_not_stall_a_single_server(make_project, run_cli, fake_judge):
    fake_judge.control(fail_first_n=8)  # every request of the first concurrent wave fails
    root = judge_project(make_project, fake_judge, [row(i, 2, 3) for i in range(8)])
    _, seconds = build(run_cli, root)
    assert fake_judge.stats()["requests"] == 16 and seconds < 5  # retried after a backoff, not a long cool-down
    assert all(r == [2, 3] for r in ratings(root).values())


def test_permanent_failure_costs_one_row_and_a_rerun_retries_only_it(make_project, run_cli, fake_judge):
    fake_judge.control(fail_if_contains="BROKEN")
    rows = [row(i, 5, 2) for i in range(6)]
    rows[3]["instruction"] = "BROKEN question"
    root = judge_project(make_project, fake_judge, rows, judges={"fake": judge_config(fake_judge, max_retries=1)})
    result = build_api(root)
    out = {r["id"]: r["j"] for r in judged(root)}
    assert out[3]["ratings"] is None and "500" in out[3]["error"]
    assert all(out[i]["ratings"] == [5, 2] and out[i]["error"] is None for i in (0, 1, 2, 4, 5))
    assert (result.judging.judged, result.judging.failed) == (5, 1)
    assert fake_judge.stats()["requests"] == 5 + 2  # the failing row: first try and one retry

    fake_judge.reset()  # the server recovers
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 1
    assert ratings(root)[3] == [5, 2]


def test_rate_limits_honour_retry_after(make_project, run_cli, fake_judge):
    fake_judge.control(rate_limit_first_n=2, retry_after=0.5)
    root = judge_project(make_project, fake_judge, [row(i, 2, 5) for i in range(4)],
                         judges={"fake": judge_config(fake_judge, concurrency=1)})
    result = build_api(root)
    stats = fake_judge.stats()
    assert stats["by_status"] == {"429": 2, "200": 4}
    assert stats["last_request_at"] - stats["first_request_at"] >= 2 * 0.5  # waited after each 429
    assert result.judging.rate_limited == 2
    assert all(r == [2, 5] for r in ratings(root).values())


def test_requests_per_minute_limit_paces_requests(make_project, run_cli, fake_judge):
    root = judge_project(make_project, fake_judge, [row(i, 1, 2) for i in range(5)],
                         judges={"fake": judge_config(fake_judge, requests_per_minute=300)})  # one per 0.2 s
    build(run_cli, root)
    stats = fake_judge.stats()
    assert stats["requests"] == 5 and stats["max_in_flight"] == 1
    assert stats["last_request_at"] - stats["first_request_at"] >= 4 * 0.2 * 0.95


def test_unparseable_answers_are_retried_then_recorded(make_project, run_cli, fake_judge):
    fake_judge.control(garbage_first_n=1, garbage_if_contains="NONSENSE")
    rows = [row(1, 4, 4), row(2, 1, 5, instruction="NONSENSE please")]
    root = judge_project(make_project, fake_judge, rows,
                         judges={"fake": judge_config(fake_judge, concurrency=1, parse_retries=2)})
    result = build_api(root)
    out = {r["id"]: r["j"] for r in judged(root)}
    assert out[1]["ratings"] == [4, 4] and out[1]["error"] is None
    bad = out[2]
    assert bad["ratings"] == [None, None] and "unparseable answer after 3 tries" in bad["error"]
    assert bad["raw"] == "Both answers are fine I guess." and bad["attempts"] == 3
    assert fake_judge.stats()["requests"] == 1 + 1 + 3
    assert result.judging.failed == 1


def test_oddly_shaped_answers_are_read_not_fatal_to_the_batch(make_project, run_cli, fake_judge):
    """Content as a list of parts, token counts as strings and floats, a number as the model name: the text
    is read, what does not fit a column becomes NULL, and the other rows of the batch are unaffected."""
    fake_judge.control(odd_shape_first_n=1)
    root = judge_project(make_project, fake_judge, [row(1, 4, 2), row(2, 5, 1), row(3, 3, 3)],
                         judges={"fake": judge_config(fake_judge, concurrency=1)})
    build(run_cli, root)
    out = {r["id"]: r["j"] for r in judged(root)}
    odd = out[1]
    assert odd["ratings"] == [4, 2] and odd["error"] is None and odd["attempts"] == 1
    assert odd["model"] == "7" and odd["prompt_tokens"] is None and odd["completion_tokens"] is None
    assert out[2]["ratings"] == [5, 1] and out[3]["ratings"] == [3, 3] and out[2]["prompt_tokens"] > 0


@pytest.mark.parametrize("value, count", [(12, 12), (12.0, 12), (1.5, None), ("12", None), (True, None),
                                          (float("nan"), None), (-1, None), (2**31, None), (None, None)])
def test_token_counts_fit_an_integer_column_or_are_null(value, count):
    from prefclean.judge.engines.base import token_count

    assert token_count(value) == count


def test_hanging_requests_time_out_and_are_retried_or_marked(make_project, run_cli):
    # Its own server: hung handlers outlive the test and would skew another test's in-flight counts.
    with FakeJudge() as server:
        server.control(hang_first_n=1, hang_ms=3000)
        root = judge_project(make_project, server, [row(1, 5, 3)],
                             judges={"fake": judge_config(server, timeout=0.5)})
        _, seconds = build(run_cli, root)
        [r] = judged(root)
        assert r["j"]["ratings"] == [5, 3] and r["j"]["attempts"] == 2 and seconds < 3
        server.reset()
        server.control(hang_if_contains="question 2\n", hang_ms=3000)
        root = judge_project(make_project, server, [row(2, 5, 3), row(3, 4, 2)],
                             judges={"fake": judge_config(server, timeout=0.4, max_retries=1)})
        build(run_cli, root)
        hung, answered = judged(root)
        assert hung["j"]["ratings"] is None and "within 0.4s" in hung["j"]["error"]
        assert answered["j"]["ratings"] == [4, 2]
        assert server.stats()["requests"] == 3  # the hung row twice, the other once


def test_incremental_model_judges_only_new_and_failed_rows(make_project, run_cli, fake_judge):
    model = """{{ config(materialized='incremental', unique_key='id') }}
select id, {{ judge('instruction', 'generations', judge='fake') }} as j
from {{ source('pairs') }}
{% if is_incremental() %}where id not in (select id from {{ this }} where j.error is null){% endif %}"""
    fake_judge.control(fail_if_contains="question 1\n")
    rows = [row(i, 4, 1) for i in range(3)]
    root = judge_project(make_project, fake_judge, rows, models={"judged": model}, dirname="inc",
                         judges={"fake": judge_config(fake_judge, max_retries=0)})
    build(run_cli, root)
    assert ratings(root) == {0: [4, 1], 1: None, 2: [4, 1]}

    fake_judge.reset()
    rows += [row(3, 2, 2), row(4, 3, 5)]
    # A fresh judgment cache: only the incremental filter keeps rows 0 and 2 from being judged again.
    (root / "target" / "judgments.duckdb").unlink()
    judge_project(make_project, fake_judge, rows, models={"judged": model}, dirname="inc",
                  judges={"fake": judge_config(fake_judge, max_retries=0)})
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 3  # rows 1 (failed before), 3 and 4
    assert ratings(root) == {0: [4, 1], 1: [4, 1], 2: [4, 1], 3: [2, 2], 4: [3, 5]}


def test_progress_bar_shows_counts_and_is_quiet_by_default(make_project, run_cli, fake_judge, monkeypatch):
    fake_judge.control(fail_if_contains="question 2\n")
    root = judge_project(make_project, fake_judge, [row(i, 3, 3) for i in range(5)],
                         judges={"fake": judge_config(fake_judge, max_retries=0)}, dirname="prog")
    monkeypatch.setenv("PREFCLEAN_PROGRESS", "1")
    result, _ = build(run_cli, root, "--refresh-judgments")
    assert "judge fake" in result.output and "5/5" in result.output
    assert "failed=1" in result.output and "row/s" in result.output and "tokens=" in result.output
    monkeypatch.setenv("PREFCLEAN_PROGRESS", "0")
    result, _ = build(run_cli, root, "--refresh-judgments")
    assert "5/5" not in result.output and "row/s" not in result.output


def test_api_key_is_sent_as_bearer_and_never_written(make_project, run_cli, fake_judge, monkeypatch):
    secret = "sk-test-0123456789-secret"
    monkeypatch.setenv("MY_JUDGE_KEY", secret)
    root = judge_project(make_project, fake_judge, [row(1, 5, 1)],
                         judges={"fake": judge_config(fake_judge, api_key_env="MY_JUDGE_KEY")})
    result, _ = build(run_cli, root)
    assert fake_judge.stats()["authorization"] == [f"Bearer {secret}"]
    assert secret not in result.output
    for path in Path(root).rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_loopback_judge_needs_no_key(make_project, run_cli, fake_judge, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    root = judge_project(make_project, fake_judge, [row(1, 5, 1)])
    build(run_cli, root)
    assert fake_judge.stats()["authorization"] == [] and ratings(root) == {1: [5, 1]}


@pytest.mark.parametrize("call, expected", [
    ("judge='nope'", "no judge named 'nope'"),
    ("judge='fake', aspect='vibes'", "unknown aspect 'vibes'"),
    ("judge='fake', task='haiku'", "unknown judge task 'haiku'"),
])
def test_configuration_mistakes_fail_the_model_with_one_clear_line(make_project, run_cli, fake_judge, call,
                                                                   expected):
    """No row can ever be judged: the model fails (its previous version stays), not every row."""
    model = ("{{ config(materialized='table') }}\n"
             f"select id, {{{{ judge('instruction', 'generations', {call}) }}}} as j from {{{{ source('pairs') }}}}")
    root = judge_project(make_project, fake_judge, [row(1, 5, 1), row(2, 1, 1)], models={"judged": model})
    result, _ = build(run_cli, root, ok=False)
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if "ERROR table judged" in line]
    assert line.startswith("1 of 1 ERROR table judged: model 'judged' failed: ") and expected in line
    assert "Traceback" not in result.output and "Invalid Input" not in result.output
    assert fake_judge.stats()["requests"] == 0


def test_project_can_override_the_prompt_template(make_project, run_cli, fake_judge):
    fake_judge.control(record_prompts=True)
    template = """Grade for {{ aspect }}: {{ instruction }}
{% for text in generations %}<text {{ loop.index }}>
{{ text }}
</text {{ loop.index }}>
{% endfor %}Answer with '#### Output for Text N', 'Rating:' and 'Rationale:' lines."""
    root = judge_project(make_project, fake_judge, [row(1, 2, 5)],
                         files={"judge_templates/ultrafeedback.jinja": template})
    build(run_cli, root)
    [prompt] = fake_judge.stats()["prompts"]
    assert "Grade for overall-rating: question 1" in prompt
    assert "rate AI answers impartially" in prompt  # the built-in system prompt is still used
    assert ratings(root) == {1: [2, 5]}


def test_ctrl_c_stops_at_once_and_keeps_what_was_judged(make_project, run_cli, fake_judge):
    import os
    import signal
    import subprocess
    import sys
    import time

    import duckdb

    fake_judge.control(latency_ms=200)
    n = 120  # ~6 s of judging at concurrency 4
    root = judge_project(make_project, fake_judge, [row(i, 4, 2) for i in range(n)],
                         judges={"fake": judge_config(fake_judge, concurrency=4)})
    process = subprocess.Popen([sys.executable, "-m", "prefclean.cli", "build", "--project-dir", str(root)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PREFCLEAN_PROGRESS": "0"})
    deadline = time.monotonic() + 30
    while fake_judge.stats()["completions"] < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 130 and time.monotonic() - sent < 3, output
    assert "interrupted" in output and "internal error" not in output
    con = duckdb.connect(str(root / "target" / "judgments.duckdb"), read_only=True)
    kept = con.execute("select count(*) from judgments").fetchone()[0]
    con.close()
    assert 12 - 4 <= kept < n  # up to `concurrency` answers may still be on the wire when Ctrl-C lands

    fake_judge.reset()
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == n - kept
    assert all(r == [4, 2] for r in ratings(root).values()) and len(ratings(root)) == n


def test_request_stream_sends_the_first_part_while_the_rest_is_prepared(fake_judge):
    """The judge UDF adds a batch's requests in parts: the first part is answered before the rest exists,
    every request is sent once, and no more than `concurrency` are ever in flight."""
    import threading

    from prefclean.judge.dispatch import Dispatcher, LoopThread, Request, RequestStream, Stats
    from prefclean.judge.engines import create_engine
    from prefclean.judge.tasks import make_task
    from prefclean.project import JudgeConfig

    fake_judge.control(latency_ms=20)
    config = JudgeConfig(name="fake", engine="openai", model="fake-judge", base_urls=(fake_judge.url,),
                         concurrency=4, max_retries=0, parse_retries=0, timeout=10)
    task = make_task("ultrafeedback", REPO)
    dispatcher = Dispatcher(config, create_engine(config), task, Stats())

    def requests(start, stop):
        return [Request(str(i), task.prompt(f"q{i}", [f"a [[rate=4]] {i}", f"b [[rate=2]] {i}"], "overall-rating",
                                            None).messages, 2) for i in range(start, stop)]

    stream = RequestStream(LoopThread.get(), dispatcher.judge_one, 2 * dispatcher.slots, threading.Event())
    stream.add(requests(0, 10))
    deadline = time.monotonic() + 10
    while fake_judge.stats()["completions"] < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_judge.stats()["completions"] == 10  # answered with nothing else added yet
    stream.add(requests(10, 50))
    outcomes = [o for arrived in stream.outcomes() for o in arrived]
    assert sorted(int(o.key) for o in outcomes) == list(range(50))
    assert all(o.ok and o.verdict.ratings == [4, 2] for o in outcomes)
    stats = fake_judge.stats()
    assert stats["requests"] == 50 and stats["max_in_flight"] <= 4
    LoopThread.get().run(dispatcher.engine.aclose())


def test_let_loop_run_returns_after_the_loop_ran_what_was_ready():
    """The judge UDF pauses between chunks of prompt rendering so the loop can answer and send: the pause
    must not return before the loop has run the work queued before it (here, a slow callback)."""
    import threading

    from prefclean.judge.dispatch import LoopThread, RequestStream

    loop = LoopThread.get()
    ran = []

    def slow():
        time.sleep(0.05)
        ran.append("slow")
        loop.loop.call_soon(ran.append, "follow-up")

    stream = RequestStream(loop, None, 1, threading.Event())
    loop.loop.call_soon_threadsafe(slow)
    stream.let_loop_run()
    assert ran == ["slow", "follow-up"]


@pytest.mark.parametrize("name, generations", [("ultrafeedback", ["a", "b"]), ("prometheus-absolute", ["a"]),
                                               ("prometheus-relative", ["a", "b"])])
def test_a_task_declares_every_template_its_prompts_use(name, generations):
    """The warm-up compiles `templates` ahead of the first batch: a prompt must not need any other."""
    from prefclean.judge.tasks import make_task

    task = make_task(name, REPO)
    task.compile_templates()
    compiled = dict(task._templates)
    assert sorted(compiled) == sorted(task.templates)
    task.prompt("question", generations, "overall-rating" if name == "ultrafeedback" else "a rubric", None)
    assert task._templates == compiled  # nothing loaded on the way


def test_a_request_cancelled_in_flight_gives_back_its_budget_hold(fake_judge):
    """A batch that fails (or Ctrl-C) cancels its requests in flight: each one's reservation must go with it, or
    a later request under a token or cost limit waits for room that never comes (the judge's guard lives for
    the whole build, across models)."""
    import threading

    from prefclean.config.judges import Budget
    from prefclean.judge.budget import BudgetGuard
    from prefclean.judge.dispatch import Dispatcher, LoopThread, Request, RequestStream, Stats
    from prefclean.judge.engines import create_engine
    from prefclean.judge.tasks import make_task
    from prefclean.project import JudgeConfig

    fake_judge.control(hang_first_n=1, hang_ms=5000)
    config = JudgeConfig(name="fake", engine="openai", model="fake-judge", base_urls=(fake_judge.url,),
                         concurrency=4, max_retries=0, parse_retries=0, timeout=10, max_tokens=100)
    task = make_task("ultrafeedback", REPO)
    guard = BudgetGuard(Budget(max_tokens=10_000), None, config.max_tokens)
    dispatcher = Dispatcher(config, create_engine(config), task, Stats(), budget=guard)
    messages = task.prompt("q", ["a [[rate=4]]", "b [[rate=2]]"], "overall-rating", None).messages
    stream = RequestStream(LoopThread.get(), dispatcher.judge_one, 2, threading.Event())
    stream.add([Request("hung", messages, 2)])
    deadline = time.monotonic() + 10
    while fake_judge.stats()["requests"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert guard.report().get("held", {}).get("requests") == 1  # in flight, holding its prompt + max_tokens
    stream.cancel()
    while "held" in guard.report() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "held" not in guard.report()
    LoopThread.get().run(dispatcher.engine.aclose())
