"""The calibration report: the judge's verdicts against human reviews (kappa, bootstrap CI, confusion,
human-vs-human agreement, threshold sweeps), on fixed inputs checked against hand computation.

The reviews are written into human.reviews by the test, in the columns `prefclean pull argilla` writes
(prefclean/export/argilla.py REVIEW_SCHEMA); the Argilla round trip itself is covered by test_export_argilla.py.
"""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pytest

from prefclean import calibration
from prefclean.calibration import bootstrap_kappa, cohen_kappa, confusion


def table(cells: dict[tuple[str, str], int]) -> tuple[list[str], list[str]]:
    """Two raters' labels with these (a, b) counts."""
    a, b = [], []
    for (x, y), n in cells.items():
        a += [x] * n
        b += [y] * n
    return a, b


def test_kappa_of_a_known_2x2_table_is_0_4():
    # 50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15 -> p_o 0.7, p_e 0.5*0.6 + 0.5*0.4 = 0.5
    a, b = table({("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15})
    assert cohen_kappa(a, b, labels=("yes", "no")) == pytest.approx(0.4)


def test_kappa_of_a_known_3x3_verdict_table_is_265_over_565():
    # rows judge (15, 10, 5), columns human (13, 11, 6), diagonal 20 of 30 -> (600 - 335) / (900 - 335)
    a, b = table({("chosen", "chosen"): 10, ("chosen", "rejected"): 2, ("chosen", "tie"): 3,
                  ("rejected", "chosen"): 1, ("rejected", "rejected"): 8, ("rejected", "tie"): 1,
                  ("tie", "chosen"): 2, ("tie", "rejected"): 1, ("tie", "tie"): 2})
    assert cohen_kappa(a, b) == pytest.approx(265 / 565)
    assert confusion(a, b)["chosen"] == {"chosen": 10, "rejected": 2, "tie": 3}


def test_kappa_is_1_for_perfect_agreement_and_undefined_when_both_give_one_label():
    assert cohen_kappa(["chosen", "tie", "rejected"], ["chosen", "tie", "rejected"]) == 1
    assert cohen_kappa(["chosen"] * 4, ["chosen"] * 4) is None and cohen_kappa([], []) is None


def test_the_bootstrap_interval_brackets_the_estimate_and_is_reproducible_with_its_seed():
    a, b = table({("chosen", "chosen"): 10, ("chosen", "rejected"): 2, ("chosen", "tie"): 3,
                  ("rejected", "chosen"): 1, ("rejected", "rejected"): 8, ("rejected", "tie"): 1,
                  ("tie", "chosen"): 2, ("tie", "rejected"): 1, ("tie", "tie"): 2})
    lo, hi = bootstrap_kappa(a, b, samples=500, seed=7)
    assert lo < 265 / 565 < hi and -1 <= lo and hi <= 1 and hi - lo < 0.8
    assert bootstrap_kappa(a, b, samples=500, seed=7) == (lo, hi)
    assert bootstrap_kappa(a, b, samples=500, seed=8) != (lo, hi)


def test_the_bootstrap_works_without_numpy(monkeypatch):
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *args, **kw: (
        (_ for _ in ()).throw(ImportError(name)) if name == "numpy" else real_import(name, *args, **kw)))
    a, b = table({("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15})
    lo, hi = bootstrap_kappa(a, b, samples=300, seed=1)
    assert lo < 0.4 < hi and bootstrap_kappa(a, b, samples=300, seed=1) == (lo, hi)


# The audit model: judge verdicts and panel ratings; `order` is how the reviewer saw the two responses.
PAIRS = [
    {"pair_id": "p1", "order": ["chosen", "rejected"], "majority_verdict": "chosen", "chosen_rating": 5.0, "rejected_rating": 2.0},
    {"pair_id": "p2", "order": ["rejected", "chosen"], "majority_verdict": "chosen", "chosen_rating": 4.0, "rejected_rating": 2.0},
    {"pair_id": "p3", "order": ["chosen", "rejected"], "majority_verdict": "tie", "chosen_rating": 3.0, "rejected_rating": 3.0},
    {"pair_id": "p4", "order": ["rejected", "chosen"], "majority_verdict": "rejected", "chosen_rating": 1.0, "rejected_rating": 4.0},
    {"pair_id": "p5", "order": ["chosen", "rejected"], "majority_verdict": "chosen", "chosen_rating": 5.0, "rejected_rating": 1.0},
    {"pair_id": "p6", "order": ["chosen", "rejected"], "majority_verdict": None, "chosen_rating": None, "rejected_rating": None},
    {"pair_id": "p7", "order": ["chosen", "rejected"], "majority_verdict": "chosen", "chosen_rating": 5.0, "rejected_rating": 1.0},
]
# (pair, user, ratings in the reviewer's order, minute). Human verdicts: p1 chosen, p2 rejected (order swapped),
# p3 tie, p4 rejected, p5 rejected then chosen (latest), p6 chosen but not judged; p7 was never reviewed.
REVIEWS = [("p1", "ann", [5, 1], 1), ("p2", "ann", [4, 2], 2), ("p3", "bob", [3, 3], 3), ("p4", "bob", [5, 1], 4),
           ("p5", "ann", [2, 4], 5), ("p5", "bob", [5, 2], 6), ("p6", "ann", [4, 1], 7)]


def calibration_project(make_project, run_cli):
    root = make_project(config={"sources": {"s": {"type": "inline", "rows": PAIRS}},
                                "vars": {"min_margin": 1, "poor_max": 2}},
                        models={"pair_decisions": "{{ config(materialized='table') }} select * from {{ source('s') }}"})
    assert run_cli("build", "--project-dir", root).exit_code == 0
    import prefclean

    con = duckdb.connect(str(prefclean.load_project(root).warehouse))
    con.execute("create schema human")
    con.execute('create table human.reviews (pair_id varchar, "user" varchar, status varchar, ratings integer[], '
                'rationales varchar[], ranking varchar[], "order" varchar[], inserted_at timestamp, updated_at timestamp)')
    for pair, user, ratings, minute in REVIEWS:
        at = datetime(2026, 1, 1, 12, minute)
        con.execute("insert into human.reviews values (?, ?, 'submitted', ?, null, null, null, ?, ?)",
                    [pair, user, ratings, at, at])
    con.execute("insert into human.reviews values ('p7', 'bob', 'draft', [1, 5], null, null, null, null, null)")
    con.execute("insert into human.reviews values ('gone', 'bob', 'submitted', [1, 5], null, null, null, null, null)")
    con.close()
    return root


def test_calibrate_reports_agreement_kappa_confusion_and_thresholds_computed_by_hand(make_project, run_cli):
    root = calibration_project(make_project, run_cli)
    result = run_cli("calibrate", "--project-dir", root, "--seed", "3")
    assert result.exit_code == 0, result
    r = json.loads((root / "target/summary.json").read_text())["calibration"]
    assert r["reviewed_pairs"] == 6 and r["not_judged"] == 1  # p7's draft is no review
    assert r["not_in_model"] == 1 and "1 reviewed pairs are not in the audit model (left out)" in result.output
    jh = r["judge_vs_human"]
    # judge (chosen, chosen, tie, rejected, chosen) vs human (chosen, rejected, tie, rejected, chosen):
    # p_o 4/5, p_e (3*2 + 1*2 + 1*1) / 25 = 0.36 -> kappa 0.44 / 0.64
    assert jh["pairs"] == 5 and jh["agreement"] == 0.8 and jh["kappa"] == round(0.44 / 0.64, 4)
    assert jh["confusion"] == {"chosen": {"chosen": 2, "rejected": 1, "tie": 0},
                               "rejected": {"chosen": 0, "rejected": 1, "tie": 0},
                               "tie": {"chosen": 0, "rejected": 0, "tie": 1}}
    lo, hi = jh["kappa_ci95"]
    assert lo <= jh["kappa"] <= hi
    assert r["human_vs_human"] == {"pairs": 1, "agreement": 0.0, "kappa": 0.0}  # p5: rejected vs chosen
    mm = {s["min_margin"]: s for s in r["thresholds"]["min_margin"]["settings"]}
    # min_margin 1 keeps p1, p2, p5 (humans: chosen, rejected, chosen); 2.5 keeps p1 (margin 3) and p5 (4)
    assert (mm[1]["kept"], mm[1]["share_kept"], mm[1]["precision"]) == (3, 0.6, 0.6667)
    assert (mm[2.5]["kept"], mm[2.5]["precision"]) == (2, 1.0) and mm[3]["kept"] == 2
    assert r["thresholds"]["min_margin"]["current"] == 1 and r["thresholds"]["min_margin"]["suggested"] == 2.5
    pm = {s["poor_max"]: s for s in r["thresholds"]["poor_max"]["settings"]}
    # poor_max 4 also drops p2 (4, 2: both rated <= 4), the pair the human says is mislabelled
    assert (pm[2]["kept"], pm[3]["kept"], pm[4]["kept"], pm[4]["precision"]) == (3, 3, 2, 1.0)
    assert r["thresholds"]["poor_max"]["suggested"] == 4
    assert r["too_small"] is True
    assert "WARNING: fewer than 30 reviewed pairs: too few to conclude anything" in result.output
    assert f"Cohen's kappa {0.44 / 0.64:.2f} (95% CI {lo:.2f} to {hi:.2f}" in result.output
    assert "human vs human: 1 pairs reviewed twice or more, agreement 0%" in result.output
    again = run_cli("calibrate", "--project-dir", root, "--seed", "3")
    assert json.loads((root / "target/summary.json").read_text())["calibration"] == r, again


def test_calibrate_keeps_the_build_summary_in_summary_json(make_project, run_cli):
    root = calibration_project(make_project, run_cli)
    (root / "target/summary.json").write_text(json.dumps({"model": "pair_decisions", "pairs": 7}))
    import prefclean

    report = prefclean.calibrate(root)
    s = json.loads((root / "target/summary.json").read_text())
    assert s["pairs"] == 7 and s["calibration"] == report


def test_calibrate_without_pulled_reviews_is_one_line_exit_2(make_project, run_cli):
    root = make_project(config={"sources": {"s": {"type": "inline", "rows": PAIRS}}},
                        models={"pair_decisions": "select * from {{ source('s') }}"})
    assert run_cli("build", "--project-dir", root).exit_code == 0
    result = run_cli("calibrate", "--project-dir", root)
    assert result.exit_code == 2 and "run `prefclean pull argilla NAME` first" in result.output, result
    assert "Traceback" not in result.output


def test_a_sample_of_30_or_more_pairs_is_not_called_too_small():
    rows = [{"pair_id": f"p{i}", "judge_verdict": "chosen", "judge_chosen": 5, "judge_rejected": 1,
             "reviews": [(5, 1) if i % 3 else (1, 5)]} for i in range(30)]
    r = calibration.report(rows, min_margin=1, poor_max=2, samples=50)
    assert r["too_small"] is False and r["judge_vs_human"]["agreement"] == 0.6667


def test_the_bootstrap_interval_matches_the_large_sample_standard_error_of_kappa():
    # Fleiss, Cohen & Everitt (1969) for the 50-item table of kappa 0.4: var = (A + B - C) / (n (1 - p_e)^2) with
    # A = .4(1 - 1.1*.6)^2 + .3(1 - .9*.6)^2 = .10972, B = .6^2 (.1*1.1^2 + .2*.9^2) = .10188, C = (.4 - .5*.6)^2
    # = .01 -> var = .2016 / 12.5 = .016128, SE .127: the 95% interval 0.4 -/+ 1.96 SE = 0.151 to 0.649
    a, b = table({("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15})
    se = (0.016128) ** 0.5
    lo, hi = bootstrap_kappa(a, b, samples=4000, seed=0)
    assert lo == pytest.approx(0.4 - 1.96 * se, abs=0.03) and hi == pytest.approx(0.4 + 1.96 * se, abs=0.03)


def test_the_bootstrap_of_perfect_agreement_is_exactly_one_to_one():
    a = ["chosen", "rejected", "tie"] * 4
    assert bootstrap_kappa(a, a, samples=200, seed=5) == (1.0, 1.0)


def test_each_aspect_and_each_judge_get_their_own_agreement_when_several_aspects_are_rated():
    # two judges rate helpfulness, one honesty; the humans say chosen, chosen, rejected, rejected
    def judges(help_a, help_b, honesty):
        return [{"judge": "a", "aspect": "helpfulness", "chosen": help_a[0], "rejected": help_a[1]},
                {"judge": "b", "aspect": "helpfulness", "chosen": help_b[0], "rejected": help_b[1]},
                {"judge": "c", "aspect": "honesty", "chosen": honesty[0], "rejected": honesty[1]}]
    rows = [{"pair_id": "p1", "judge_verdict": "chosen", "judge_chosen": 5, "judge_rejected": 2,
             "judges": judges((5, 2), (4, 2), (5, 1)), "reviews": [(5, 1)]},
            {"pair_id": "p2", "judge_verdict": "chosen", "judge_chosen": 4, "judge_rejected": 2,
             "judges": judges((5, 1), (1, 5), (2, 4)), "reviews": [(5, 1)]},   # helpfulness mean 3 v 3: tie
            {"pair_id": "p3", "judge_verdict": "rejected", "judge_chosen": 2, "judge_rejected": 4,
             "judges": judges((2, 4), (2, 4), (2, 4)), "reviews": [(1, 5)]},
            {"pair_id": "p4", "judge_verdict": "chosen", "judge_chosen": 4, "judge_rejected": 2,
             "judges": judges((4, 2), (1, 4), (1, 3)), "reviews": [(1, 5)]}]   # helpfulness 2.5 v 3: tie
    r = calibration.report(rows, min_margin=1, poor_max=2, samples=50)
    assert r["aspects"] == ["helpfulness", "honesty"]
    # helpfulness (means): chosen, tie, rejected, tie -> 2 of 4; honesty: chosen, rejected, rejected, rejected -> 3 of 4
    assert r["per_aspect"]["helpfulness"]["agreement"] == 0.5 and r["per_aspect"]["honesty"]["agreement"] == 0.75
    # judge a: chosen, chosen, rejected, chosen -> 3 of 4; b: chosen, rejected, rejected, rejected -> 3 of 4
    assert r["per_judge"]["a"]["confusion"]["chosen"] == {"chosen": 2, "rejected": 1, "tie": 0}
    assert r["per_judge"]["b"]["confusion"]["rejected"] == {"chosen": 1, "rejected": 2, "tie": 0}
    assert r["per_judge"]["c"]["kappa"] == round(cohen_kappa(["chosen", "rejected", "rejected", "rejected"],
                                                             ["chosen", "chosen", "rejected", "rejected"]), 4)
    from prefclean.calibration_format import format_report

    text = "\n".join(format_report({**r, "not_in_model": 0}))
    assert "per aspect:\n    helpfulness: 4 pairs, agreement 50%" in text and "too few to conclude" in text


def test_a_flipped_pair_counts_as_right_when_the_human_prefers_the_rejected_response():
    rows = [{"pair_id": "p1", "judge_verdict": "rejected", "judge_chosen": 1, "judge_rejected": 5, "human": "rejected"},
            {"pair_id": "p2", "judge_verdict": "rejected", "judge_chosen": 1, "judge_rejected": 4, "human": "chosen"},
            {"pair_id": "p3", "judge_verdict": "chosen", "judge_chosen": 5, "judge_rejected": 1, "human": "chosen"}]
    from prefclean.calibration_sweeps import Settings, outcome

    assert outcome(rows, Settings(allow_flip=False)) == {"kept": 1, "share_kept": 0.3333, "precision": 1.0}
    assert outcome(rows, Settings(allow_flip=True)) == {"kept": 3, "share_kept": 1.0, "precision": 0.6667}


def test_calibrate_on_a_model_without_the_verdict_columns_names_them_exit_2(make_project, run_cli):
    root = calibration_project(make_project, run_cli)
    (root / "models" / "thin.sql").write_text("{{ config(materialized='table') }} select pair_id from {{ source('s') }}")
    assert run_cli("build", "--project-dir", root).exit_code == 0
    result = run_cli("calibrate", "--project-dir", root, "--model", "thin")
    assert result.exit_code == 2 and "Traceback" not in result.output, result
    assert "model 'thin' has no column chosen_rating, majority_verdict, order, rejected_rating" in result.output


def test_calibrate_with_a_switch_that_is_not_true_or_false_is_one_line(make_project, run_cli):
    root = calibration_project(make_project, run_cli)
    result = run_cli("calibrate", "--project-dir", root, "--vars", "{drop_position_biased: 'yes'}")
    assert result.exit_code == 2 and "var 'drop_position_biased' is 'yes'; calibrate needs true or false" in result.output


def test_calibrate_with_no_submitted_review_yet_says_so_in_one_line(make_project, run_cli):
    root = calibration_project(make_project, run_cli)
    import prefclean

    con = duckdb.connect(str(prefclean.load_project(root).warehouse))
    con.execute("delete from human.reviews where status = 'submitted'")
    con.close()
    result = run_cli("calibrate", "--project-dir", root)
    assert result.exit_code == 0, result
    lines = [line for line in result.output.splitlines() if line.startswith("Calibration")]
    assert lines == ["Calibration: no submitted review yet in human.reviews (nothing to measure): run "
                     "`prefclean pull argilla NAME` again once reviewers have submitted"], result.output
    assert "confusion" not in result.output


def test_calibrate_on_a_model_that_does_not_exist_names_it_even_without_reviews(make_project, run_cli):
    root = make_project(config={"sources": {"s": {"type": "inline", "rows": PAIRS}}},
                        models={"pair_decisions": "select * from {{ source('s') }}"})
    assert run_cli("build", "--project-dir", root).exit_code == 0
    result = run_cli("calibrate", "--project-dir", root, "--model", "nope")
    assert result.exit_code == 2 and "no model 'nope'" in result.output, result
