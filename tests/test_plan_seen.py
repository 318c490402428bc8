"""What `prefclean plan` takes from what it has seen (issue 15 §1): the expected completion tokens are the mean of
this judge's cached judgments, and the wall time the mean latency of its answered calls in the call log over
its concurrency; both read from the judgment cache a first build wrote."""

from __future__ import annotations

import json

import duckdb
import pytest
import yaml

from test_cost import judge_project_for


def plan(run_cli, root) -> dict:
    result = run_cli("plan", "--project-dir", root, "--json")
    assert result.exit_code == 0, result
    return json.loads(result.output)["judges"][0]


def test_plan_expects_the_cached_mean_completion_and_the_logged_latency(tmp_path, fake_judge, run_cli):
    rows = [{"id": i, "instruction": f"q{i}", "generations": [f"a{i}", f"b{i}"]} for i in range(4)]
    root = judge_project_for(tmp_path, fake_judge, rows, concurrency=2, max_tokens=300,
                             price={"input_per_million": 1.0, "output_per_million": 4.0})
    first = plan(run_cli, root)
    assert (first["completion_tokens"], first["completion_tokens_seen"], first["seconds"]) == (4 * 300, False, None)
    fake_judge.control(latency_ms=120)
    result = run_cli("build", "--project-dir", root)
    assert result.exit_code == 0, result

    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["sources"]["pairs"]["rows"] = rows + [{"id": 10 + i, "instruction": f"new {i}",
                                                  "generations": [f"c{i}", f"d{i}"]} for i in range(6)]
    (root / "prefclean.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with duckdb.connect(str(root / "target" / "judgments.duckdb"), read_only=True) as con:
        mean_completion = con.execute("select avg(completion_tokens) from judgments").fetchone()[0]
        latency_ms = con.execute("select avg(latency_ms) from calls where status = 'ok'").fetchone()[0]
    assert latency_ms >= 120
    j = plan(run_cli, root)
    assert j["requests"] == 6 and j["completion_tokens_seen"] is True
    assert j["completion_tokens"] == round(6 * mean_completion) < 6 * 300
    assert j["cost_usd"] == pytest.approx((j["prompt_tokens"] * 1.0 + j["completion_tokens"] * 4.0) / 1e6, abs=1e-6)
    assert j["seconds_bound_by"] == "latency" and j["latency_ms_seen"] == pytest.approx(latency_ms, abs=0.1)
    assert j["seconds"] == pytest.approx(round(6 * latency_ms / 1000 / 2, 1))

    # Asked for ratings only now: the mean of answers with rationales would overstate it; none seen yet
    config["judges"]["fake"]["rationale"] = "none"
    (root / "prefclean.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    j = plan(run_cli, root)
    assert j["requests"] == 6 and j["completion_tokens_seen"] is False and j["completion_tokens"] == 6 * 300
