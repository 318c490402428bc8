"""Cost control (issue 15 §1 §2): `prefclean plan`, budgets, cost accounting, token-rate and header pacing.

Every count is checked against the fake judge's own counters (requests it received, prompt tokens it counted)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from judge_fixtures import build, build_api, copy_example, judge_config, summary_json

PRICE = {"input_per_million": 2.0, "output_per_million": 8.0}


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under target/ with its bytes and mtime."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted((root / "target").rglob("*")) if p.is_file()}


def _set_judge(root: Path, **settings) -> None:
    path = root / "prefclean.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["judges"]["fake"].update(settings)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _plan(run_cli, root, *args) -> dict:
    result = run_cli("plan", "--project-dir", root, "--json", *args)
    assert result.exit_code == 0, result
    return json.loads(result.output)


def test_plan_sends_nothing_and_a_build_then_sends_exactly_what_it_said(tmp_path, fake_judge, run_cli):
    root = copy_example(tmp_path, fake_judge)
    _set_judge(root, price=PRICE)
    plan = _plan(run_cli, root)
    assert fake_judge.stats()["requests"] == 0
    assert not (root / "target").exists()  # no warehouse, no cache, no artifacts made by the plan
    (j,) = plan["judges"]
    pairs = 52  # data/orca_sample.jsonl: each pair judged twice (the bias check's swapped pass)
    assert (j["name"], j["rows"], j["cached"], j["requests"], j["token_count"]) == ("fake", 2 * pairs, 0, 2 * pairs,
                                                                                  "estimated")
    assert j["completion_tokens"] == j["completion_tokens_max"] == 2 * pairs * 512  # no mean seen yet: max_tokens
    assert j["cost_usd"] == pytest.approx((j["prompt_tokens"] * 2.0 + j["completion_tokens"] * 8.0) / 1e6)

    build(run_cli, root)
    stats = fake_judge.stats()
    assert stats["requests"] == j["requests"]
    assert stats["prompt_tokens"] == j["prompt_tokens"]  # the same prompts, counted by the same rule

    # Everything is judged now: nothing to plan; from scratch the cache answers all, and the plan reads the
    # mean completion and latency it saw. Neither plan changes a byte of the warehouse or the cache.
    before = _files(root)
    fake_judge.reset()
    assert _plan(run_cli, root)["judges"] == []
    again = _plan(run_cli, root, "--full-refresh")["judges"][0]
    assert fake_judge.stats()["requests"] == 0
    assert _files(root) == before
    assert (again["requests"], again["cached"], again["prompt_tokens"]) == (0, 2 * pairs, 0)
    assert again["completion_tokens_seen"] is True and again["latency_ms_seen"] is not None


def test_plan_counts_only_what_an_incremental_build_would_judge_again(tmp_path, fake_judge, run_cli):
    rows = [{"system": "", "instruction": f"q{i}", "chosen": f"good {i} [[rate=5]]", "rejected": f"bad {i} [[rate=1]]"}
            for i in range(6)]
    root = copy_example(tmp_path, fake_judge, rows=rows, vars={"check_position_bias": False})
    build(run_cli, root)
    rows.append({"system": "", "instruction": "new", "chosen": "fine [[rate=4]]", "rejected": "meh [[rate=2]]"})
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["sources"]["pairs"]["rows"] = rows
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    fake_judge.reset()
    j = _plan(run_cli, root, "--select", "+judged_pairs")["judges"][0]
    assert (j["rows"], j["cached"], j["requests"]) == (1, 0, 1)  # the incremental filter picked the new pair only
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 1


def test_the_python_plan_returns_a_typed_result_with_the_time_a_rate_limit_takes(tmp_path, fake_judge):
    import prefclean

    rows = [{"id": i, "instruction": f"q{i}", "generations": [f"a{i}", f"b{i}"]} for i in range(10)]
    root = judge_project_for(tmp_path, fake_judge, rows, requests_per_minute=120)
    plan = prefclean.plan(root)
    assert isinstance(plan, prefclean.Plan)
    j = plan.judge("fake")
    assert (j.requests, j.seconds, j.seconds_bound_by, j.cost_usd) == (10, 5.0, "requests_per_minute", None)
    assert fake_judge.stats()["requests"] == 0


def judge_project_for(tmp_path, server, rows, **settings) -> Path:
    root = tmp_path / "p"
    (root / "models").mkdir(parents=True)
    config = {"name": "cost", "sources": {"pairs": {"type": "inline", "rows": rows}},
              "judges": {"fake": judge_config(server, **settings)}}
    (root / "prefclean.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (root / "models" / "judged.sql").write_text(
        "{{ config(materialized='incremental', unique_key='id') }}\n"
        "select id, {{ judge('instruction', 'generations', judge='fake') }} as j from {{ source('pairs') }}\n"
        "{% if is_incremental() %} where id not in (select id from {{ this }} where j.error is null) {% endif %}\n",
        encoding="utf-8")
    return root


def test_a_request_budget_stops_sending_and_the_next_build_goes_on_from_there(tmp_path, fake_judge, run_cli, query):
    root = copy_example(tmp_path, fake_judge)
    _set_judge(root, price=PRICE, budget={"max_requests": 30})
    out, _ = build(run_cli, root)
    assert fake_judge.stats()["requests"] == 30
    assert "budget reached (max_requests 30)" in out.output
    reasons = dict(query(root, "select reason, count(*) from pair_decisions group by 1"))
    judged_both = query(root, "select count(*) from judged_pairs where list_bool_and(list_transform("
                              "judgments || judgments_reversed, lambda j: j.error is null))")[0][0]
    assert reasons["not_judged_budget"] == 52 - judged_both and "judge_failed" not in reasons
    s = summary_json(root)
    assert s["judge_failures"] == 0 and s["not_judged_budget"] == reasons["not_judged_budget"]
    spent = s["this_run_judges"]["fake"]
    assert spent["spent"]["requests"] == 30 and spent["stopped_by"] == "max_requests 30"
    assert spent["spent"]["cost_usd"] == pytest.approx(s["this_run"]["cost_usd"]) and s["this_run"]["cost_usd"] > 0
    # the unsent rows are not cached: the cache holds exactly the 30 answers, the call log their costs
    cache = root / "target" / "judgments.duckdb"
    import duckdb

    with duckdb.connect(str(cache), read_only=True) as con:
        assert con.execute("select count(*) from judgments").fetchone()[0] == 30
        logged = con.execute("select count(*), sum(cost_usd) from calls").fetchone()
    assert logged[0] == 30 and logged[1] == pytest.approx(s["this_run"]["cost_usd"])

    fake_judge.reset()
    plan = _plan(run_cli, root)["judges"][0]
    assert plan["requests"] == 104 - 30 and plan["over_budget"] == ["max_requests 30"]
    _set_judge(root, budget={"max_requests": 1000})
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 104 - 30  # only what was not sent before
    assert "not_judged_budget" not in dict(query(root, "select reason, count(*) from pair_decisions group by 1"))


def test_max_cost_on_the_command_line_caps_every_judge_together(tmp_path, fake_judge, run_cli):
    rows = [{"id": i, "instruction": f"q{i} " + "x" * 400, "generations": [f"a{i}", f"b{i}"]} for i in range(20)]
    root = judge_project_for(tmp_path, fake_judge, rows, price={"input_per_million": 1000.0, "output_per_million": 0},
                             max_tokens=16, concurrency=1)
    plan = _plan(run_cli, root)["judges"][0]
    per_request = plan["cost_usd"] / plan["requests"]
    out, _ = build(run_cli, root, "--max-cost", f"{per_request * 5.5:.6f}")
    sent = fake_judge.stats()["requests"]
    assert sent == 5, out.output  # each reservation is the request's estimated prompt: the sixth would pass the cap
    assert "--max-cost" in out.output


def test_a_token_budget_holds_even_with_requests_in_flight_together(tmp_path, fake_judge, run_cli):
    rows = [{"id": i, "instruction": f"q{i}", "generations": [f"a{i}", f"b{i}"]} for i in range(40)]
    root = judge_project_for(tmp_path, fake_judge, rows, max_tokens=100, concurrency=8,
                             budget={"max_tokens": 3000})
    fake_judge.control(latency_ms=50)
    build(run_cli, root)
    stats = fake_judge.stats()
    assert 0 < stats["requests"] < 40
    assert stats["prompt_tokens"] + stats["completion_tokens"] <= 3000


def test_tokens_per_minute_paces_the_requests(tmp_path, fake_judge, run_cli):
    rows = [{"id": i, "instruction": f"q{i}", "generations": [f"a{i}", f"b{i}"]} for i in range(6)]
    root = judge_project_for(tmp_path, fake_judge, rows, max_tokens=50, concurrency=8)
    per_request = _plan(run_cli, root)["judges"][0]["prompt_tokens"] / 6 + 50
    _set_judge(root, tokens_per_minute=per_request * 60 / 0.2)  # one request's tokens every 0.2 s
    start = time.perf_counter()
    build(run_cli, root)
    first, last = fake_judge.stats()["first_request_at"], fake_judge.stats()["last_request_at"]
    assert last - first >= 5 * 0.2 * 0.8, (first, last, time.perf_counter() - start)


def test_the_providers_ratelimit_headers_pause_requests_before_a_429(tmp_path, fake_judge, run_cli):
    rows = [{"id": i, "instruction": f"q{i}", "generations": [f"a{i}", f"b{i}"]} for i in range(8)]
    root = judge_project_for(tmp_path, fake_judge, rows, concurrency=1)
    fake_judge.control(ratelimit_requests=3, ratelimit_window_ms=300)
    result = build_api(root)
    stats = fake_judge.stats()
    assert stats["by_status"] == {"200": 8}, stats["by_status"]  # never sent into the limit
    assert result.judging.paced_by_headers >= 2
    assert stats["last_request_at"] - stats["first_request_at"] >= 0.5


def test_requests_sent_together_before_any_header_arrives_meet_the_limit_and_are_retried_within_it(tmp_path, fake_judge):
    """The fake judge's limit is real: eight requests at once get 429s for what is over it."""
    rows = [{"id": i, "instruction": f"q{i}", "generations": [f"a{i}", f"b{i}"]} for i in range(8)]
    root = judge_project_for(tmp_path, fake_judge, rows, concurrency=8, max_retries=6)
    fake_judge.control(ratelimit_requests=3, ratelimit_window_ms=300, latency_ms=20)
    result = build_api(root)
    assert fake_judge.stats()["by_status"].get("429", 0) > 0 and result.judging.judged == 8


def test_a_bad_price_or_budget_key_is_one_line_naming_it(tmp_path, fake_judge, run_cli):
    rows = [{"id": 1, "instruction": "q", "generations": ["a", "b"]}]
    root = judge_project_for(tmp_path, fake_judge, rows, budget={"max_request": 3})
    result = run_cli("plan", "--project-dir", root)
    assert result.exit_code == 2 and "judges.fake.budget.max_request" in result.output
    assert "did you mean `max_requests`" in result.output
    _set_judge(root, budget={"max_requests": -1})
    result = run_cli("build", "--project-dir", root)
    assert result.exit_code == 2 and "judges.fake.budget.max_requests" in result.output
    _set_judge(root, budget={"max_cost_usd": 1})  # no price: no request would ever count against it
    result = run_cli("plan", "--project-dir", root)
    assert result.exit_code == 2 and "`judges.fake.budget.max_cost_usd` needs the judge's `price:" in result.output


def test_max_cost_says_when_a_judge_has_no_price_to_count(tmp_path, fake_judge, run_cli):
    rows = [{"id": 1, "instruction": "q", "generations": ["a", "b"]}]
    root = judge_project_for(tmp_path, fake_judge, rows)
    out, _ = build(run_cli, root, "--max-cost", "0.01")
    assert "WARNING --max-cost: judge fake has no `price:`, so its requests count nothing against the cap" in out.output
    assert fake_judge.stats()["requests"] == 1


@pytest.mark.llm
def test_plan_counts_a_gguf_judges_prompt_tokens_exactly_as_llama_cpp_reports_them(tmp_path, run_cli, make_project):
    rows = [{"id": i, "instruction": f"What is {i} + {i}?", "generations": [str(2 * i), "no idea"]} for i in range(2)]
    root = make_project(config={"name": "gguf", "sources": {"pairs": {"type": "inline", "rows": rows}}},
                        models={"judged": "{{ config(materialized='table') }}\nselect id, {{ judge('instruction', "
                                          "'generations') }} as j from {{ source('pairs') }}"})
    j = _plan(run_cli, root)["judges"][0]
    assert j["token_count"] == "exact" and j["requests"] == 2
    build(run_cli, root)
    import duckdb

    with duckdb.connect(str(root / "target" / "judgments.duckdb"), read_only=True) as con:
        reported = con.execute("select sum(prompt_tokens) from calls").fetchone()[0]
    assert reported == j["prompt_tokens"]
