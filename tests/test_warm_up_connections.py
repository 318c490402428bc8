"""A build whose judgment cache is new sends every row it judges: the judge's warm-up opens its connections
before the first batch arrives (judge/udf.py _open_connections), and the first requests use them."""

from __future__ import annotations

from judge_fixtures import build_api, judge_config, judge_project

from prefclean.judge.udf import _judging, _warm_up
from prefclean.project import load_project
from prefclean.udf import RunContext

ROWS = [{"id": i, "instruction": f"q{i}", "generations": [f"a{i}", f"b{i}"]} for i in range(6)]


def _opened(ctx: RunContext) -> int:
    entry = ctx.state.get("opened engine fake")
    return 0 if entry is None else sum(len(r.endpoint._idle) for r in entry[1].replicas)


def test_a_new_cache_has_the_judges_connections_opened_by_the_warm_up_and_used(make_project, fake_judge):
    root = judge_project(make_project, fake_judge, ROWS, judges={"fake": judge_config(fake_judge, concurrency=3)})
    ctx = RunContext(project=load_project(root))
    try:
        _warm_up(ctx)
        assert _opened(ctx) == 3
        engine = ctx.state["opened engine fake"][1]
        session = _judging(ctx).session("fake", "ultrafeedback")
        assert session.dispatcher.engine is engine and "opened engine fake" not in ctx.state
    finally:
        ctx.close()
    assert not any(r.endpoint._idle for r in engine.replicas)  # closed with the build


def test_a_cache_that_may_answer_opens_nothing_ahead(make_project, fake_judge):
    root = judge_project(make_project, fake_judge, ROWS)
    build_api(root)  # the cache now exists (and answers every row)
    ctx = RunContext(project=load_project(root))
    try:
        _warm_up(ctx)
        assert "opened engine fake" not in ctx.state
    finally:
        ctx.close()
    again = build_api(root)
    assert again.judging.cached == len(ROWS) and fake_judge.stats()["requests"] == len(ROWS)


def test_a_cold_build_with_its_connections_opened_ahead_judges_every_row_once(make_project, fake_judge):
    root = judge_project(make_project, fake_judge, ROWS)
    result = build_api(root)
    assert result.judging.requests == len(ROWS) and fake_judge.stats()["requests"] == len(ROWS)
    assert result.judging.failed == 0
