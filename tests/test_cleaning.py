"""Cleaning decisions on known inputs: the example project's models (judged_pairs -> pair_ratings ->
pair_decisions -> cleaned_pairs) over inline pairs whose texts tell the fake judge what to answer."""

from __future__ import annotations

import duckdb
import pytest

from judge_fixtures import build, copy_example, judge_config, judged, summary_json


def pair(name, chosen_rating, rejected_rating, **extra):
    return {"system": "", "instruction": f"question {name}",
            "chosen": f"chosen answer {name} [[rate={chosen_rating}]]",
            "rejected": f"rejected answer {name} [[rate={rejected_rating}]]", **extra}


KNOWN = [pair("keep", 5, 2), pair("mislabelled", 2, 5), pair("tie", 4, 4), pair("poor", 2, 1),
         pair("small-margin", 4, 3), {**pair("failing", 5, 1), "instruction": "question FAILING"}]


def decisions(root):
    rows = judged(root, "select instruction, decision, reason, chosen_rating, rejected_rating, margin "
                        "from pair_decisions order by instruction")
    return {r["instruction"].split()[-1]: r for r in rows}


def build_example(tmp_path, run_cli, server, rows, *args, **vars):
    root = copy_example(tmp_path, server, rows=rows, vars={"check_position_bias": False, **vars})
    result, _ = build(run_cli, root, *args)
    return root, result


def test_each_decision_rule(tmp_path, run_cli, fake_judge):
    fake_judge.control(fail_if_contains="FAILING")
    root, result = build_example(tmp_path, run_cli, fake_judge, KNOWN)
    d = decisions(root)
    assert {k: (v["decision"], v["reason"]) for k, v in d.items()} == {
        "keep": ("keep", "judge_agrees"),
        "mislabelled": ("drop", "judge_prefers_rejected"),  # flipping is opt-in
        "tie": ("drop", "tie"),
        "poor": ("drop", "both_poor"),
        "small-margin": ("keep", "judge_agrees"),
        "FAILING": ("drop", "judge_failed"),
    }
    # ratings mapped back through `order`: whichever position the shuffle gave them
    assert [(d[k]["chosen_rating"], d[k]["rejected_rating"], d[k]["margin"]) for k in ("keep", "mislabelled")] == [
        (5, 2, 3), (2, 5, -3)]
    orders = {tuple(r["order"]) for r in judged(root, 'select "order" from shuffled_pairs')}
    assert orders == {("chosen", "rejected"), ("rejected", "chosen")}, "the sample must exercise both orders"
    assert judged(root, "select pair_id from cleaned_pairs") and "TESTS_FAILED=0" in result.output


def test_thresholds_and_flipping_are_vars(tmp_path, run_cli, fake_judge):
    root, _ = build_example(tmp_path, run_cli, fake_judge, KNOWN[:5], allow_flip=True, min_margin=2, poor_max=1)
    d = decisions(root)
    assert {k: (v["decision"], v["reason"]) for k, v in d.items()} == {
        "keep": ("keep", "judge_agrees"),
        "mislabelled": ("flip", "judge_prefers_rejected"),
        "tie": ("drop", "tie"),
        "poor": ("drop", "tie"),  # 2 vs 1 is no longer both poor, and a margin of 1 is now a tie
        "small-margin": ("drop", "tie"),
    }
    dpo = judged(root, "select * from cleaned_pairs order by prompt")
    assert list(dpo[0]) == ["pair_id", "system", "prompt", "chosen", "rejected", "chosen_rating", "rejected_rating",
                            "chosen_rationale", "rejected_rationale", "judge_model", "decision"]
    flipped = next(r for r in dpo if r["decision"] == "flip")
    assert flipped["chosen"].startswith("rejected answer mislabelled") and flipped["chosen_rating"] == 5
    assert flipped["rejected"].startswith("chosen answer mislabelled") and flipped["rejected_rating"] == 2
    assert flipped["chosen_rationale"].endswith("earns 5.") and flipped["rejected_rationale"].endswith("earns 2.")
    assert [r["prompt"] for r in dpo] == ["question keep", "question mislabelled"]
    assert {r["judge_model"] for r in dpo} == {"fake-judge"}


PANEL = {"j1": "judge-a", "j2": "judge-b", "j3": "judge-c"}


def panel_pair(name, *ratings_per_judge):
    """ratings_per_judge: (chosen, rejected) for judge-a, judge-b, judge-c."""
    chosen = " ".join(f"[[rate:{m}={c}]]" for m, (c, _) in zip(PANEL.values(), ratings_per_judge))
    rejected = " ".join(f"[[rate:{m}={r}]]" for m, (_, r) in zip(PANEL.values(), ratings_per_judge))
    return {"system": "", "instruction": f"question {name}", "chosen": f"chosen {chosen}",
            "rejected": f"rejected {rejected}"}


def test_panel_mean_majority_agreement(tmp_path, run_cli, fake_judge):
    rows = [panel_pair("unanimous", (5, 1), (4, 2), (5, 2)),
            panel_pair("majority", (5, 1), (4, 2), (2, 3)),
            panel_pair("split", (2, 5), (4, 3), (3, 3))]
    judges = {name: judge_config(fake_judge, model=model) for name, model in PANEL.items()}
    root = copy_example(tmp_path, fake_judge, rows=rows, extra_judges=judges,
                        vars={"judges": list(PANEL), "check_position_bias": False, "min_agreement": 0.6})
    build(run_cli, root)
    assert fake_judge.stats()["models"] == {"judge-a": 3, "judge-b": 3, "judge-c": 3}
    rows = judged(root, "select instruction, judges, judge_models, chosen_rating, rejected_rating, majority_verdict, "
                        "agreement, decision, reason from pair_decisions order by instruction")
    got = {r["instruction"].split()[-1]: r for r in rows}
    u, m, s = got["unanimous"], got["majority"], got["split"]
    assert (u["judges"], u["judge_models"]) == (3, "judge-a, judge-b, judge-c")
    assert (u["chosen_rating"], u["rejected_rating"], u["agreement"]) == (pytest.approx(14 / 3), pytest.approx(5 / 3), 1.0)
    assert (u["decision"], u["majority_verdict"]) == ("keep", "chosen")
    assert m["majority_verdict"] == "chosen" and m["agreement"] == pytest.approx(2 / 3)
    assert (m["decision"], m["reason"]) == ("keep", "judge_agrees")  # 2 of 3 agree, above min_agreement 0.6
    assert m["chosen_rating"] - m["rejected_rating"] == pytest.approx(5 / 3)  # decided on the panel's mean
    assert s["agreement"] == pytest.approx(1 / 3) and (s["decision"], s["reason"]) == ("drop", "judges_disagree")
    per_judge = judged(root, "select judge, count(*) as n from pair_ratings group by judge order by judge")
    assert per_judge == [{"judge": j, "n": 3} for j in PANEL]


def test_two_judges_that_disagree_drop_the_pair(tmp_path, run_cli, fake_judge):
    rows = [panel_pair("agree", (5, 2), (4, 1)), panel_pair("disagree", (5, 2), (2, 5))]
    judges = {name: judge_config(fake_judge, model=PANEL[name]) for name in ("j1", "j2")}
    root = copy_example(tmp_path, fake_judge, rows=rows, extra_judges=judges,
                        vars={"judges": ["j1", "j2"], "check_position_bias": False})
    build(run_cli, root)
    d = decisions(root)
    assert (d["agree"]["decision"], d["disagree"]["decision"], d["disagree"]["reason"]) == (
        "keep", "drop", "judges_disagree")


def test_position_bias_is_flagged_dropped_and_reported(tmp_path, run_cli, fake_judge):
    # Pairs without markers get ratings by position: the first text always wins, whatever it is.
    fake_judge.control(position_ratings=[5, 2])
    rows = [pair("steady", 5, 2), pair("steady2", 1, 4),
            {"system": "", "instruction": "question biased", "chosen": "plain a", "rejected": "plain b"},
            {"system": "", "instruction": "question biased2", "chosen": "plain c", "rejected": "plain d"}]
    root = copy_example(tmp_path, fake_judge, rows=rows, vars={"check_position_bias": True})
    result, _ = build(run_cli, root)
    assert fake_judge.stats()["requests"] == 8  # each pair judged twice: as shuffled and swapped
    d = decisions(root)
    assert (d["biased"]["decision"], d["biased"]["reason"]) == ("drop", "position_bias")
    assert (d["biased2"]["decision"], d["biased2"]["reason"]) == ("drop", "position_bias")
    assert (d["steady"]["decision"], d["steady2"]["reason"]) == ("keep", "judge_prefers_rejected")
    flags = judged(root, "select instruction, position_flipped from pair_decisions order by instruction")
    assert [f["position_flipped"] for f in flags] == [True, True, False, False]
    s = summary_json(root)
    assert s["position_bias"] == {"checked": 4, "verdict_changed": 2, "rate": 0.5}
    assert "position bias: verdict changed on 2 of 4 swapped pairs (50%)" in result.output

    # Keeping biased pairs is a choice: they are then decided on the first judgment.
    root2 = copy_example(tmp_path / "keep", fake_judge, rows=rows,
                         vars={"check_position_bias": True, "drop_position_biased": False})
    build(run_cli, root2)
    assert all(r["reason"] != "position_bias" for r in decisions(root2).values())


def test_human_review_overrides_the_judge(tmp_path, run_cli, fake_judge):
    rows = [pair("keep", 5, 2), pair("other", 5, 1)]
    root, _ = build_example(tmp_path, run_cli, fake_judge, rows)
    assert decisions(root)["keep"]["decision"] == "keep"
    shuffled = judged(root, "select pair_id, \"order\" from shuffled_pairs where instruction = 'question keep'")[0]
    # The reviewer saw the shuffled order and preferred the rejected response (rating by position).
    human = [5 if label == "rejected" else 1 for label in shuffled["order"]]
    con = duckdb.connect(str(root / "target" / "prefclean.duckdb"))
    con.execute("create schema human; create table human.reviews (pair_id varchar, status varchar, ratings integer[], "
                "updated_at timestamp)")
    # the latest submitted review wins; a later draft (another reviewer's, unfinished) counts for nothing
    con.execute("insert into human.reviews values (?, 'submitted', ?, now() - interval 1 hour), "
                "(?, 'submitted', ?, now()), (?, 'draft', [3, 3], now() + interval 1 hour)",
                [shuffled["pair_id"], [3, 3], shuffled["pair_id"], human, shuffled["pair_id"]])
    con.close()
    build(run_cli, root)
    d = decisions(root)
    assert (d["keep"]["decision"], d["keep"]["reason"]) == ("flip", "human_review: judge_prefers_rejected")
    assert (d["other"]["decision"], d["other"]["reason"]) == ("keep", "judge_agrees")


def test_run_summary_printed_and_written(tmp_path, run_cli, fake_judge):
    fake_judge.control(fail_if_contains="FAILING")
    root, result = build_example(tmp_path, run_cli, fake_judge, KNOWN)
    s = summary_json(root)
    assert s["model"] == "pair_decisions" and s["pairs"] == 6
    assert s["decisions"] == {"keep": 2, "drop": 4}
    assert {(r["decision"], r["reason"]): r["pairs"] for r in s["reasons"]} == {
        ("keep", "judge_agrees"): 2, ("drop", "judge_prefers_rejected"): 1, ("drop", "tie"): 1,
        ("drop", "both_poor"): 1, ("drop", "judge_failed"): 1}
    assert s["label_agreement"] == {"judged_pairs": 5, "judge_agrees_with_label": 3, "judge_prefers_rejected": 1,
                                    "ties": 1, "agreement_rate": 0.6}
    assert s["judge_failures"] == 1 and s["tokens"]["prompt"] > 0 and s["run_id"]
    assert s["this_run"]["failed"] == 1 and s["this_run"]["requests"] == 5 + 3  # the failing pair: 1 + 2 retries
    assert "Summary (pair_decisions): 6 pairs -> keep 2 (33%), flip 0 (0%), drop 4 (67%)" in result.output
    assert "judge failures: 1" in result.output
    stored = judged(root, "select count(*) as n from _prefclean.run_summaries")
    assert stored == [{"n": 1}]


def test_example_project_builds_with_the_fake_judge(tmp_path, run_cli, fake_judge):
    """The shipped example over its 52-pair sample: every model, every data test, a sensible summary.

    A judge that always prefers the first position keeps exactly the pairs the shuffle put `chosen` first.
    """
    fake_judge.control(position_ratings=[5, 2])
    root = copy_example(tmp_path, fake_judge, vars={"check_position_bias": False})
    result, _ = build(run_cli, root)
    assert "ERROR=0 SKIP=0" in result.output and "TESTS_FAILED=0" in result.output
    assert "PASS no_lost_pairs" in result.output and "    FAIL " not in result.output
    first = judged(root, "select count(*) filter (where \"order\"[1] = 'chosen') as n, count(*) as total "
                         "from shuffled_pairs")[0]
    s = summary_json(root)
    assert s["pairs"] == first["total"] == 52
    assert s["decisions"] == {"keep": first["n"], "drop": 52 - first["n"]}
    assert judged(root, "select count(*) as n from cleaned_pairs") == [{"n": first["n"]}]
    test_result = run_cli("test", "--project-dir", root)
    assert test_result.exit_code == 0 and " 0 failed" in test_result.output, test_result
