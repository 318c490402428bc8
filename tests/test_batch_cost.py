"""Budgets and cost accounting for the openai-batch engine (issue 15 §2 with §4), against tests/servers/fake_batch.py.

The fake batch server reports each answered line's `usage` (prompt: the messages' characters / 4, the rule
prefclean estimates by; completion: the answer's characters / 4), so every cost here is checked against what
the provider said it used, at the price less `batch_discount`."""

from __future__ import annotations

import json

import duckdb
import pytest
import yaml

from judge_fixtures import build, copy_example, judged, summary_json
from servers.fake_batch import FakeBatch

PRICE = {"input_per_million": 2.0, "output_per_million": 8.0, "batch_discount": 0.5}


def pair(i: int) -> dict:  # the same length for every i < 10: every line reserves the same
    return {"system": "", "instruction": f"question {i}", "chosen": f"good answer {i} [[rate=5]]",
            "rejected": f"bad answer {i} [[rate=2]]"}


ROWS = [pair(i) for i in range(5)]


@pytest.fixture(scope="module")
def _batch_server():
    with FakeBatch() as server:
        yield server


@pytest.fixture
def batch_server(_batch_server):
    _batch_server.reset()
    return _batch_server


def batch_example(tmp_path, fake_judge, server, rows=ROWS, **settings):
    """The example project on these pairs (no bias check: one line per pair), judged by a batch judge."""
    root = copy_example(tmp_path, fake_judge, rows=rows, vars={"check_position_bias": False})
    set_judge(root, engine="openai-batch", base_url=server.url, model="fake-judge", poll_seconds=0.05, timeout=10,
              price=PRICE, **settings)
    return root


def set_judge(root, replace: bool = True, **settings) -> None:
    path = root / "prefclean.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["judges"]["fake"] = settings if replace else {**config["judges"]["fake"], **settings}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def plan(run_cli, root, *args) -> dict:
    result = run_cli("plan", "--project-dir", root, "--json", *args)
    assert result.exit_code == 0, result
    return json.loads(result.output)["judges"][0]


def calls(root) -> list[dict]:
    with duckdb.connect(str(root / "target" / "judgments.duckdb"), read_only=True) as con:
        cur = con.execute("select status, prompt_tokens, completion_tokens, cost_usd from calls order by called_at")
        return [dict(zip(("status", "prompt", "completion", "cost"), row)) for row in cur.fetchall()]


def billed(prompt: int, completion: int) -> float:
    return (prompt * PRICE["input_per_million"] + completion * PRICE["output_per_million"]) / 1e6 * 0.5


def errors(root) -> list:
    return [r["e"] for r in judged(root, "select judgments[1].error as e from judged_pairs order by pair_id")]


def test_a_batch_builds_cost_is_the_usage_its_output_reports_at_the_discounted_price(tmp_path, fake_judge, run_cli,
                                                                                     batch_server):
    root = batch_example(tmp_path, fake_judge, batch_server)
    p = plan(run_cli, root)
    assert p["requests"] == 5 and p["seconds_bound_by"] == "completion_window" and p["seconds"] == 86400
    assert p["cost_usd"] == pytest.approx(billed(p["prompt_tokens"], p["completion_tokens"]), abs=1e-6)
    out, _ = build(run_cli, root)
    logged = calls(root)
    assert len(logged) == 5 and {c["status"] for c in logged} == {"ok"}
    prompt, completion = sum(c["prompt"] for c in logged), sum(c["completion"] for c in logged)
    assert prompt == p["prompt_tokens"]  # the plan counted the prompts by the rule the fake provider reports
    for c in logged:
        assert c["cost"] == pytest.approx(billed(c["prompt"], c["completion"]))
    s = summary_json(root)
    assert s["this_run"]["cost_usd"] == pytest.approx(billed(prompt, completion))
    spent = s["this_run_judges"]["fake"]
    assert spent["spent"] == {"requests": 5, "tokens": prompt + completion,
                              "cost_usd": pytest.approx(billed(prompt, completion), abs=1e-6)}
    assert "held" not in spent and "from_earlier_batches" not in spent
    assert f"judge fake: spent 5 requests, {prompt + completion} tokens, $" in out.output

    # From scratch the cache answers every row: what it saved is the call log's mean cost per answer.
    out, _ = build(run_cli, root, "--full-refresh")
    judge = summary_json(root)["this_run_judges"]["fake"]
    assert judge["spent"]["requests"] == 0 and judge["saved_by_cache"]["rows"] == 5
    assert judge["saved_by_cache"]["cost_usd"] == pytest.approx(billed(prompt, completion), abs=1e-6)
    assert "the cache answered 5 rows (saved ~$" in out.output


def test_a_request_budget_submits_only_the_lines_it_holds_and_the_next_build_goes_on(tmp_path, fake_judge, run_cli,
                                                                                    batch_server, query):
    root = batch_example(tmp_path, fake_judge, batch_server, budget={"max_requests": 3})
    assert plan(run_cli, root)["over_budget"] == ["max_requests 3"]
    out, _ = build(run_cli, root)
    assert [u["lines"] for u in batch_server.stats()["uploads"]] == [3]
    assert "budget reached (max_requests 3)" in out.output
    assert sorted(errors(root), key=str) == [None] * 3 + ["not judged: budget"] * 2
    reasons = dict(query(root, "select reason, count(*) from pair_decisions group by 1"))
    assert reasons["not_judged_budget"] == 2 and "judge_failed" not in reasons and "batch_pending" not in reasons
    s = summary_json(root)
    assert s["not_judged_budget"] == 2 and s["this_run"]["not_judged_budget"] == 2
    assert s["this_run_judges"]["fake"]["stopped_by"] == "max_requests 3"
    assert s["this_run_judges"]["fake"]["spent"]["requests"] == 3
    with duckdb.connect(str(root / "target" / "judgments.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from batch_requests").fetchone()[0] == 3  # never recorded as submitted

    set_judge(root, replace=False, budget={"max_requests": 10})
    build(run_cli, root)
    assert [u["lines"] for u in batch_server.stats()["uploads"]] == [3, 2]  # only the two not sent before
    assert errors(root) == [None] * 5


@pytest.mark.parametrize("where", ["budget", "command line"])
def test_a_cost_cap_holds_each_lines_most_at_the_batch_price_before_anything_is_uploaded(
        tmp_path, fake_judge, run_cli, batch_server, where):
    root = batch_example(tmp_path, fake_judge, batch_server)
    p = plan(run_cli, root)
    per_line = p["cost_usd_max"] / p["requests"]  # its prompt and max_tokens, less the discount
    cap = f"{per_line * 2.5:.8f}"
    if where == "budget":
        set_judge(root, replace=False, budget={"max_cost_usd": float(cap)})
        assert plan(run_cli, root)["over_budget"] == [f"max_cost_usd {float(cap):g}"]
        out, _ = build(run_cli, root)
    else:
        out, _ = build(run_cli, root, "--max-cost", cap)
    assert [u["lines"] for u in batch_server.stats()["uploads"]] == [2]
    assert errors(root).count("not judged: budget") == 3
    s = summary_json(root)
    assert 0 < s["this_run"]["cost_usd"] <= float(cap)
    assert s["this_run_judges"]["fake"]["stopped_by"] == (f"max_cost_usd {float(cap):g}" if where == "budget"
                                                          else f"--max-cost {float(cap):g}")


def test_lines_still_in_a_batch_stay_held_and_the_build_that_collects_them_reports_their_cost(
        tmp_path, fake_judge, run_cli, batch_server):
    batch_server.control(hold=True)
    root = batch_example(tmp_path, fake_judge, batch_server)
    out, _ = build(run_cli, root, "--no-wait")
    assert "5 requests still in a batch, holding" in out.output
    first = summary_json(root)["this_run_judges"]["fake"]
    assert first["spent"]["requests"] == 5 and first["spent"]["tokens"] == 0
    assert first["held"]["requests"] == 5 and first["held"]["cost_usd"] > 0
    # the plan knows they are submitted: nothing more to send or pay for
    p = plan(run_cli, root)
    assert (p["rows"], p["in_open_batches"], p["requests"], p["cost_usd"]) == (5, 5, 0, 0.0)
    assert batch_server.stats()["batches_created"] == 1

    batch_server.control(hold=False)
    out, _ = build(run_cli, root)
    assert "5 requests collected from earlier builds' batches, costing" in out.output
    logged = calls(root)
    prompt, completion = sum(c["prompt"] for c in logged), sum(c["completion"] for c in logged)
    s = summary_json(root)
    later = s["this_run_judges"]["fake"]
    assert later["spent"] == {"requests": 0, "tokens": 0, "cost_usd": 0.0}  # the first build held the budget
    assert later["from_earlier_batches"] == {"requests": 5, "tokens": prompt + completion,
                                             "cost_usd": pytest.approx(billed(prompt, completion), abs=1e-6)}
    assert s["this_run"]["cost_usd"] == pytest.approx(billed(prompt, completion))
    assert all(c["cost"] == pytest.approx(billed(c["prompt"], c["completion"])) for c in logged)


def test_failed_lines_cost_nothing_and_release_what_they_held(tmp_path, fake_judge, run_cli, batch_server):
    batch_server.control(error_if_contains="question 3")
    root = batch_example(tmp_path, fake_judge, batch_server)
    build(run_cli, root)
    logged = calls(root)
    assert sorted(c["status"] for c in logged) == ["error"] + ["ok"] * 4
    assert [c["cost"] for c in logged if c["status"] == "error"] == [0.0]
    judge = summary_json(root)["this_run_judges"]["fake"]
    assert "held" not in judge and judge["spent"]["cost_usd"] == pytest.approx(sum(c["cost"] for c in logged),
                                                                              abs=1e-6)
