"""`escalate:` a cheap judge first, a stronger one only for the pairs the cheap one is unsure of (ratings at most
`margin` apart, or an unreadable answer): two loopback fake judges, requests counted at each server."""

from __future__ import annotations

import json

import pytest
import yaml

from judge_fixtures import build, copy_example, judge_config, judged, summary_json
from servers.fake_judge import FakeJudge


def pair(name, cheap, strong):
    """A pair the cheap judge rates `cheap` (chosen, rejected) and the strong judge `strong`."""
    (cc, cr), (sc, sr) = cheap, strong
    return {"system": "", "instruction": f"question {name}",
            "chosen": f"chosen {name} [[rate:cheap-8b={cc}]] [[rate:strong-70b={sc}]]",
            "rejected": f"rejected {name} [[rate:cheap-8b={cr}]] [[rate:strong-70b={sr}]]"}


# clear to the cheap judge: 5-1 (gap 4), 1-4 (gap 3); unsure: 4-3 (gap 1), 3-3 (tie); garbled: unreadable answer
ROWS = [pair("clear", (5, 1), (4, 4)), pair("clear2", (1, 4), (4, 4)), pair("close", (4, 3), (5, 2)),
        pair("even", (3, 3), (2, 5)), pair("garbled", (5, 1), (5, 1))]


@pytest.fixture
def strong():
    with FakeJudge() as server:
        yield server


def project(tmp_path, cheap, strong, margin=1, **vars):
    root = copy_example(tmp_path, cheap, rows=ROWS, vars={"check_position_bias": False, **vars})
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["judges"] = {"fake": judge_config(cheap, model="cheap-8b", escalate={"to": "strong", "margin": margin}),
                        "strong": judge_config(strong, model="strong-70b")}
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


def decisions(root):
    rows = judged(root, "select instruction, decision, reason, escalated, judge_models, chosen_rating, rejected_rating "
                        "from pair_decisions order by instruction")
    return {r["instruction"].split()[-1]: r for r in rows}


def test_only_the_pairs_the_cheap_judge_is_unsure_of_go_to_the_strong_judge(tmp_path, run_cli, fake_judge, strong):
    fake_judge.control(garbage_if_contains="question garbled")
    root = project(tmp_path, fake_judge, strong)
    result, _ = build(run_cli, root)
    assert fake_judge.stats()["requests"] == 5 + 1  # every pair, and the garbled one asked once more (parse_retries)
    assert strong.stats()["requests"] == 3  # close (gap 1), even (tie), garbled (unreadable)
    d = decisions(root)
    assert {k for k, r in d.items() if r["escalated"]} == {"close", "even", "garbled"}
    assert (d["clear"]["chosen_rating"], d["clear"]["rejected_rating"]) == (5, 1)  # the cheap judge's ratings
    assert (d["close"]["chosen_rating"], d["close"]["rejected_rating"]) == (5, 2)  # the strong judge's
    assert d["even"]["reason"] == "judge_prefers_rejected" and d["garbled"]["reason"] == "judge_agrees"
    assert d["close"]["judge_models"] == "strong-70b" and d["clear"]["judge_models"] == "cheap-8b"
    assert summary_json(root)["escalated"] == 3
    assert "escalated: 3 pairs judged by the stronger judge" in result.output
    # a rebuild sends nothing to either judge
    fake_judge.reset(), strong.reset()
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 0 and strong.stats()["requests"] == 0


def test_the_swapped_pass_asks_the_judge_that_made_the_first_judgment(tmp_path, run_cli, fake_judge, strong):
    root = project(tmp_path, fake_judge, strong, margin=0, check_position_bias=True)
    build(run_cli, root)
    # margin 0: only the tie escalates; every pair is judged swapped by its own judge
    assert fake_judge.stats()["requests"] == 5 + 4
    assert strong.stats()["requests"] == 1 + 1
    d = decisions(root)
    assert {k for k, r in d.items() if r["escalated"]} == {"even"}
    assert d["even"]["reason"] == "judge_prefers_rejected"  # the strong judge's 2-5, both ways: no flip


def test_in_a_panel_only_the_escalating_member_asks_the_strong_judge_again(tmp_path, run_cli, fake_judge, strong):
    root = project(tmp_path, fake_judge, strong, judges=["fake", "strong"], min_agreement=0.5)
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 5
    assert strong.stats()["requests"] == 5  # its own place in the panel; the escalations are the same requests
    rows = judged(root, "select s.instruction, r.judge, r.escalated from pair_ratings r "
                        "join shuffled_pairs s using (pair_id) order by 1, 2")
    escalated = [(r["instruction"].split()[-1], r["judge"]) for r in rows if r["escalated"]]
    assert sorted(escalated) == [("close", "strong"), ("even", "strong")] and len(rows) == 10


def test_a_changed_strong_judge_or_margin_rejudges_and_the_cache_answers_the_cheap_judge(tmp_path, run_cli,
                                                                                         fake_judge, strong):
    root = project(tmp_path, fake_judge, strong)
    build(run_cli, root)
    fake_judge.reset(), strong.reset()
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["judges"]["fake"]["escalate"]["margin"] = 3
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 0  # the cheap judge's answers come from the judgment cache
    assert strong.stats()["requests"] == 1  # clear2 (gap 3) is unsure now; the others' answers are cached
    assert {k for k, r in decisions(root).items() if r["escalated"]} == {"clear2", "close", "even"}


def test_plan_counts_at_most_every_pair_for_the_strong_judge(tmp_path, run_cli, fake_judge, strong):
    root = project(tmp_path, fake_judge, strong)
    result = run_cli("plan", "--json", "--project-dir", str(root))
    assert result.exit_code == 0, result.output
    plan = {j["name"]: j for j in json.loads(result.output)["judges"]}
    assert plan["fake"]["requests"] == 5 and plan["fake"]["escalated_from"] is None
    # no verdict known: each taken as a tie, so every pair may go to the strong judge
    assert plan["strong"]["requests"] == 5 and plan["strong"]["escalated_from"] == "fake"
    assert plan["strong"]["requests_count"] == "upper_bound" and plan["strong"]["requests_at_least"] == 0
    assert fake_judge.stats()["requests"] == 0 and strong.stats()["requests"] == 0
    text = run_cli("plan", "--project-dir", str(root)).output
    assert "judge strong: escalation from fake" in text
    # with the cheap judge's verdicts in the cache the plan knows which pairs escalate: exact
    build(run_cli, root)
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["judges"]["strong"]["temperature"] = 0.1  # a changed strong judge: its answers are not cached
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    fake_judge.reset(), strong.reset()
    plan = {j["name"]: j for j in json.loads(run_cli("plan", "--json", "--project-dir", str(root)).output)["judges"]}
    assert plan["strong"]["requests"] == 2 and plan["strong"]["requests_count"] == "exact"  # close and even
    build(run_cli, root)
    assert strong.stats()["requests"] == 2 and fake_judge.stats()["requests"] == 0


@pytest.mark.parametrize("escalate, message", [
    ({"to": "strnog"}, "`judges.fake.escalate.to` is 'strnog', which is not in `judges`; did you mean 'strong'?"),
    ({"to": "fake"}, "`judges.fake.escalate.to` is 'fake', the judge itself"),
    ({"to": "strong", "margin": -1}, "judges.fake.escalate.margin"),
    ({"to": "strong", "why": 1}, "judges.fake.escalate.why"),
])
def test_a_wrong_escalate_is_one_line_naming_the_key(tmp_path, run_cli, fake_judge, strong, escalate, message):
    root = project(tmp_path, fake_judge, strong)
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["judges"]["fake"]["escalate"] = escalate
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = run_cli("build", "--project-dir", str(root))
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert fake_judge.stats()["requests"] == 0 and strong.stats()["requests"] == 0


def test_uncertain_rechecks_each_close_kept_pair_with_the_judge_that_made_it(tmp_path, run_cli, fake_judge, strong):
    fake_judge.control(garbage_if_contains="question garbled")
    root = project(tmp_path, fake_judge, strong, margin=1, check_position_bias="uncertain", bias_check_margin=1)
    build(run_cli, root)
    # close (cheap 4-3) and even (3-3) escalate: the strong judge rates them 5-2 and 2-5, clear; garbled
    # escalates as unreadable (strong 5-1, clear); clear and clear2 stay with the cheap judge, clear too
    assert (fake_judge.stats()["requests"], strong.stats()["requests"]) == (5 + 1, 3)
    checks = {r["instruction"].split()[-1]: r["bias_check"] for r in judged(
        root, "select instruction, bias_check from pair_decisions")}
    assert set(checks.values()) == {"clear"}
    # a margin-0 escalation keeps close with the cheap judge: close and kept, its swapped pass asks the cheap
    # judge; the strong judge's pairs are clear and need none
    fake_judge.reset(), strong.reset()
    fake_judge.control(garbage_if_contains="question garbled")
    root0 = project(tmp_path / "zero", fake_judge, strong, margin=0, check_position_bias="uncertain")
    build(run_cli, root0)
    assert (fake_judge.stats()["requests"], strong.stats()["requests"]) == (5 + 1 + 1, 2)
    d = decisions(root0)
    assert judged(root0, "select bias_check from pair_decisions where instruction = 'question close'") == [
        {"bias_check": "swapped"}]
    assert not d["close"]["escalated"] and d["close"]["reason"] == "judge_agrees"


def test_plans_upper_bound_holds_for_the_swapped_pass_of_a_judge_that_keeps_its_pair(tmp_path, run_cli, fake_judge,
                                                                                      strong):
    """With escalation and the uncertain bias check, an unknown verdict taken as a tie always escalates, so the
    cheap judge's own swapped pass (a close pair its margin-0 escalation keeps) was never counted: the plan said
    5 'exact' and the build sent 6."""
    root = project(tmp_path, fake_judge, strong, margin=0, check_position_bias="uncertain", bias_check_margin=1)
    result = run_cli("plan", "--json", "--project-dir", str(root))
    assert result.exit_code == 0, result.output
    plan = {j["name"]: j for j in json.loads(result.output)["judges"]}
    build(run_cli, root)
    sent = {"fake": fake_judge.stats()["requests"], "strong": strong.stats()["requests"]}
    assert sent == {"fake": 5 + 1, "strong": 1}  # close's swapped pass by the cheap judge; even to the strong one
    for name in ("fake", "strong"):
        assert plan[name]["requests_at_least"] <= sent[name] <= plan[name]["requests"], (name, plan[name])
    assert plan["fake"]["requests_count"] == "upper_bound" and plan["fake"]["requests"] == 10
