"""The review queue's side that needs no Argilla server: which reviews the calibration report compares
(the random calibration sample only, when there is one) and how `prefclean export --review` picks pairs.
The Argilla round trip with real annotators is in test_export_argilla.py."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb

PAIRS = [  # the audit model: the judge's verdicts and panel ratings
    {"pair_id": f"c{i}", "order": ["chosen", "rejected"], "majority_verdict": "chosen", "chosen_rating": 5.0,
     "rejected_rating": 1.0} for i in range(4)
] + [
    {"pair_id": f"u{i}", "order": ["chosen", "rejected"], "majority_verdict": "tie", "chosen_rating": 3.0,
     "rejected_rating": 3.0} for i in range(3)
]


def reviewed_project(make_project, run_cli, reviews):
    """A built project with human.reviews holding `reviews`: (pair, user, ratings, queue)."""
    root = make_project(config={"sources": {"s": {"type": "inline", "rows": PAIRS}},
                                "vars": {"min_margin": 1, "poor_max": 2}},
                        models={"pair_decisions": "{{ config(materialized='table') }} select * from {{ source('s') }}"})
    assert run_cli("build", "--project-dir", root).exit_code == 0
    con = duckdb.connect(str(root / "target" / "prefclean.duckdb"))
    con.execute("create schema human")
    con.execute('create table human.reviews (pair_id varchar, "user" varchar, status varchar, queue varchar, '
                'ratings integer[], updated_at timestamp)')
    for minute, (pair, user, ratings, queue) in enumerate(reviews):
        con.execute("insert into human.reviews values (?, ?, 'submitted', ?, ?, ?)",
                    [pair, user, queue, ratings, datetime(2026, 1, 1, 12, minute)])
    con.close()
    return root


def test_calibrate_compares_only_the_calibration_sample_when_there_is_one(make_project, run_cli):
    # the judge agrees with the human on 3 of the 4 calibration pairs; on the uncertain pairs it says tie and
    # the humans never do: counting them would make it look far worse than a random sample shows
    reviews = [("c0", "ann", [5, 1], "calibration"), ("c1", "ann", [5, 2], "calibration"),
               ("c2", "bob", [4, 1], "calibration"), ("c3", "bob", [1, 5], "calibration"),
               ("u0", "ann", [5, 1], "uncertain"), ("u1", "bob", [1, 5], "uncertain"),
               ("u2", "bob", [5, 1], "uncertain")]
    root = reviewed_project(make_project, run_cli, reviews)
    result = run_cli("calibrate", "--project-dir", root)
    assert result.exit_code == 0, result
    r = json.loads((root / "target/summary.json").read_text())["calibration"]
    assert r["sample"] == "calibration" and r["left_out_uncertain"] == 3
    assert r["reviewed_pairs"] == 4 and r["judge_vs_human"]["agreement"] == 0.75
    assert r["judge_vs_human"]["confusion"]["chosen"] == {"chosen": 3, "rejected": 1, "tie": 0}
    assert "the random calibration sample only (3 reviewed pairs of the uncertain queue left out" in result.output


def test_reviews_only_from_the_uncertain_queue_are_compared_with_a_warning(make_project, run_cli):
    reviews = [("u0", "ann", [5, 1], "uncertain"), ("u1", "bob", [3, 3], "uncertain")]
    root = reviewed_project(make_project, run_cli, reviews)
    result = run_cli("calibrate", "--project-dir", root)
    assert result.exit_code == 0, result
    r = json.loads((root / "target/summary.json").read_text())["calibration"]
    assert (r["sample"], r["uncertain_only"], r["reviewed_pairs"]) == ("all", True, 2)
    assert r["judge_vs_human"]["agreement"] == 0.5
    assert "WARNING: no calibration sample: these reviews come from the uncertain queue" in result.output


def test_the_calibration_allocation_is_proportional_and_only_grows_with_k():
    from prefclean.export.review_queue import allocate

    sizes = {"keep": 70, "drop": 25, "flip": 5}
    assert allocate(sizes, 20) == {"keep": 14, "drop": 5, "flip": 1}
    previous = allocate(sizes, 0)
    for k in range(1, 101):
        now = allocate(sizes, k)
        assert sum(now.values()) == k and all(now[s] >= previous[s] for s in sizes)
        previous = now
    assert allocate({"keep": 2, "drop": 1}, 10) == {"keep": 2, "drop": 1}  # never more than a stratum has


def test_the_uncertain_queue_ranks_by_the_documented_score_and_skips_what_was_sent():
    from prefclean.export.review_queue import QueuePlan, pick

    con = duckdb.connect()
    con.execute("""create table m as select * from (values
        ('clear',    5.0, 1.0, 1.0, false, 'keep'),
        ('flipped',  5.0, 2.0, 1.0, true,  'drop'),   -- 1 (bias) + 0 (margin 3)
        ('split',    3.5, 3.0, 0.5, false, 'drop'),   -- 1 (panel) + 0.75 (margin 0.5)
        ('tie',      3.0, 3.0, 1.0, false, 'drop'),   -- 1 (margin 0)
        ('reversed', 2.0, 3.0, 1.0, false, 'drop'),   -- 0.5 (margin -1) + 1 (prefers rejected)
        ('failed',   null, null, null, null, 'drop')
        ) t(pair_id, chosen_rating, rejected_rating, agreement, position_flipped, decision)""")
    plan = QueuePlan(review="uncertain", budget=3)
    got = pick(con, "m", plan, existing={})
    assert [(p, q, u) for p, (q, u) in got.picked.items()] == [
        ("split", "uncertain", 1.75), ("reversed", "uncertain", 1.5), ("tie", "uncertain", 1.0)]
    assert got.not_judged == 1
    # sent before: the next ones come instead, and nothing already there is sent again
    again = pick(con, "m", plan, existing={"split": "uncertain", "tie": "uncertain"})
    assert list(again.picked) == ["reversed", "flipped", "clear"] and again.already_sent == 2


def options_project(make_project, run_cli, **argilla_options):
    root = make_project(config={"sources": {"s": {"type": "inline", "rows": PAIRS}},
                                "exports": {"argilla": {"model": "pair_decisions", "target": "argilla",
                                                        "on_build": False, **argilla_options},
                                            "files": {"model": "pair_decisions", "target": "parquet"}}},
                        models={"pair_decisions": "{{ config(materialized='table') }} select * from {{ source('s') }}"})
    return root


def one_line(result) -> str:
    assert result.exit_code == 2 and "Traceback" not in result.output, result
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_review_options_that_do_not_go_together_are_one_line_naming_the_key(make_project, run_cli):
    root = options_project(make_project, run_cli, review="uncertain")
    line = one_line(run_cli("export", "argilla", "--project-dir", root))
    assert "`exports.argilla.budget` is needed with review: uncertain" in line
    root = options_project(make_project, run_cli, budget=10)
    assert "`exports.argilla.budget` counts uncertain pairs: set review: uncertain" in one_line(
        run_cli("export", "argilla", "--project-dir", root))
    root = options_project(make_project, run_cli, calibration=-1)
    assert "`exports.argilla.calibration` must be" in one_line(run_cli("export", "argilla", "--project-dir", root))


def test_review_flags_apply_to_argilla_exports_only(make_project, run_cli):
    root = options_project(make_project, run_cli)
    line = one_line(run_cli("export", "files", "--review", "uncertain", "--budget", "5", "--project-dir", root))
    assert "--review, --budget: export 'files' is a parquet export; the review options are for argilla exports " \
           "(argilla)" in line
    line = one_line(run_cli("export", "argilla", "--review", "uncertain", "--project-dir", root))
    assert "export 'argilla': budget is needed with review: uncertain" in line
    line = one_line(run_cli("export", "argilla", "--budget", "5", "--project-dir", root))
    assert "export 'argilla': budget counts uncertain pairs: set review: uncertain" in line
