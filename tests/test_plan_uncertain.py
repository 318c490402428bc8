"""`prefclean plan` with `check_position_bias: uncertain` (issue 15 §1 with §5): which pairs get the swapped pass
depends on first verdicts (close, kept, and the judge's position tilt). When they are in the judgment cache the
plan counts exactly the swapped requests the build sends; when they are not, it gives the upper bound (every
pair re-checked, the tilt taken as none), the requests sent whatever the verdicts (no pair re-checked that a
tilt could spare), and an estimate with unknown verdicts drawn from the judge's cached ones. Counted at the fake
judge."""

from __future__ import annotations

import json

import yaml

from judge_fixtures import build, copy_example, judged, summary_json

UNCERTAIN = {"check_position_bias": "uncertain", "bias_check_margin": 1}


def pair(name, chosen_rating, rejected_rating):
    return {"system": "", "instruction": f"question {name}", "chosen": f"chosen answer {name} [[rate={chosen_rating}]]",
            "rejected": f"rejected answer {name} [[rate={rejected_rating}]]"}


# clear (gaps 4, 3, 4), close and kept (c: gap 1), a tie (d): the build re-checks c only
ROWS = [pair("a", 5, 1), pair("b", 1, 4), pair("c", 4, 3), pair("d", 3, 3), pair("e", 5, 1)]


def plan(run_cli, root, *args) -> dict:
    result = run_cli("plan", "--project-dir", root, "--json", *args)
    assert result.exit_code == 0, result
    return json.loads(result.output)["judges"][0]


def set_rows(root, rows) -> None:
    path = root / "prefclean.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["sources"]["pairs"]["rows"] = rows
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def test_with_no_first_verdict_known_the_plan_gives_the_upper_bound_and_says_so(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, rows=ROWS, vars=UNCERTAIN)
    j = plan(run_cli, root)
    assert fake_judge.stats()["requests"] == 0
    assert {"name", "requests", "cached", "prompt_tokens", "completion_tokens", "cost_usd", "seconds",
            "token_count"} <= set(j)
    assert (j["requests_count"], j["requests"], j["requests_at_least"], j["estimate"]) == ("upper_bound", 10, 5, None)
    text = run_cli("plan", "--project-dir", root).output
    assert "at most (upper bound): 5 are sent whatever the first verdicts" in text
    assert "no estimate: no verdict of this judge in the cache to draw from" in text
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 5 + 1  # within the bounds the plan gave


def test_with_the_first_pass_in_the_cache_the_plan_counts_exactly_the_swapped_requests(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, rows=ROWS, vars={"check_position_bias": False})
    build(run_cli, root)  # the first passes only: the same prompts as uncertain's first pass
    fake_judge.reset()
    j = plan(run_cli, root, "--vars", json.dumps(UNCERTAIN))
    assert (j["requests_count"], j["requests"], j["requests_at_least"], j["cached"]) == ("exact", 1, 1, 5)
    assert j["estimate"] is None
    build(run_cli, root, "--vars", json.dumps(UNCERTAIN))
    assert fake_judge.stats()["requests"] == j["requests"]
    # and with true every pair needs its swapped pass: exact too, without any run on stand-ins mattering
    fake_judge.reset()
    assert plan(run_cli, root, "--vars", '{"check_position_bias": true}')["requests"] == 4


def test_the_estimate_draws_unknown_verdicts_from_the_judges_cached_ones(tmp_path, run_cli, fake_judge):
    new = [pair("x", 5, 1), pair("y", 2, 2), pair("z", 1, 5)]
    # every cached verdict is clear: new pairs are expected to need no swapped pass
    clear = copy_example(tmp_path / "clear", fake_judge, rows=[pair(f"c{i}", 5, 1) for i in range(4)], vars=UNCERTAIN)
    build(run_cli, clear)
    set_rows(clear, [pair(f"c{i}", 5, 1) for i in range(4)] + new)
    j = plan(run_cli, clear)
    assert (j["requests_count"], j["requests"], j["requests_at_least"]) == ("upper_bound", 6, 3)
    assert j["estimate"]["requests"] == 3 and j["estimate"]["from_cached_verdicts"] == 4
    assert j["estimate"]["prompt_tokens"] < j["prompt_tokens"]

    # every cached verdict close (4-3 by position), and allow_flip keeps either order: every new pair is
    # expected to be re-checked
    kept = {**UNCERTAIN, "allow_flip": True}
    close = copy_example(tmp_path / "close", fake_judge, rows=[pair(f"t{i}", 4, 3) for i in range(3)], vars=kept)
    build(run_cli, close)
    set_rows(close, [pair(f"t{i}", 4, 3) for i in range(3)] + new)
    j = plan(run_cli, close)
    assert (j["requests"], j["requests_at_least"]) == (6, 3)
    assert j["estimate"]["requests"] == 6 and j["estimate"]["from_cached_verdicts"] == 6  # first and swapped passes
    fake_judge.reset()
    build(run_cli, close)
    assert fake_judge.stats()["requests"] == 3  # x and z are clear, y a tie: dropped whatever the swap says


def test_unknown_verdicts_leave_the_tilt_unsettled_so_both_bounds_hold(tmp_path, run_cli, fake_judge):
    """Cached first passes of a fair judge on 50 pairs (30 close, shown first and second), then 40 new pairs of
    two poor answers it rates 2-1 for whichever comes first: the build finds the tilt and spares the close pairs
    whose winner sat second. The plan cannot know that before asking: its upper bound re-checks them all, its
    least re-checks none that a tilt could spare (with the cached verdicts alone it would count all 30)."""
    fake_judge.control(first_position_bonus=1)
    old = [pair(f"close{i:02d}", 4, 3) for i in range(30)] + [pair(f"wide{i:02d}", 5, 1) for i in range(20)]
    new = [{"system": "", "instruction": f"question poor{i:02d}", "chosen": f"chosen answer poor{i:02d} "
            "[[rate=1]] [[biased]]", "rejected": f"rejected answer poor{i:02d} [[rate=1]] [[biased]]"}
           for i in range(40)]
    root = copy_example(tmp_path, fake_judge, rows=old, vars={"check_position_bias": False})
    build(run_cli, root)  # the old pairs' first passes only
    set_rows(root, old + new)
    fake_judge.reset()
    fake_judge.control(first_position_bonus=1)
    j = plan(run_cli, root, "--vars", json.dumps(UNCERTAIN))
    assert j["requests_count"] == "upper_bound"
    assert j["requests_at_least"] == 40  # the new first passes: every close old pair may be spared by a tilt
    assert j["requests"] == 40 + 30 + 40  # and at most every close old pair and every new one re-checked
    build(run_cli, root, "--vars", json.dumps(UNCERTAIN))
    sent = fake_judge.stats()["requests"]
    shown_first = judged(root, "select count(*) as n from pair_decisions where instruction like '%close%' "
                               "and \"order\"[1] = 'chosen'")[0]["n"]
    assert 0 < shown_first < 30
    assert sent == 40 + shown_first  # both-poor pairs are dropped anyway; the close ones shown second are spared
    assert j["requests_at_least"] <= sent <= j["requests"]
    pb = summary_json(root)["position_bias"]
    assert pb["tilt"]["favours"] == "first" and pb["skipped"]["against_tilt"] == 30 - shown_first
