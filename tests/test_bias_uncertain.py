"""check_position_bias: uncertain — the swapped pass only for pairs whose first verdict is close (the panel's
mean ratings at most bias_check_margin apart), counted at the fake judge; decisions and the summary's counts."""

from __future__ import annotations

from judge_fixtures import build, copy_example, judged, summary_json


def pair(name, chosen_rating, rejected_rating):
    return {"system": "", "instruction": f"question {name}",
            "chosen": f"chosen answer {name} [[rate={chosen_rating}]]",
            "rejected": f"rejected answer {name} [[rate={rejected_rating}]]"}


# clear: 5-1 and 1-4 (gaps 4, 3); close: 4-3 and 3-3 (gaps 1, 0); biased: unmarked, rated by position 4-3
ROWS = [pair("clear", 5, 1), pair("clear2", 1, 4), pair("close", 4, 3), pair("even", 3, 3),
        {"system": "", "instruction": "question biased", "chosen": "plain a", "rejected": "plain b"}]


def rows_of(root):
    rows = judged(root, "select instruction, decision, reason, bias_checked, bias_check_skipped, position_flipped "
                        "from pair_decisions order by instruction")
    return {r["instruction"].split()[-1]: r for r in rows}


def test_uncertain_sends_the_swapped_pass_only_for_close_pairs(tmp_path, run_cli, fake_judge):
    fake_judge.control(position_ratings=[4, 3])
    root = copy_example(tmp_path, fake_judge, rows=ROWS,
                        vars={"check_position_bias": "uncertain", "bias_check_margin": 1})
    result, _ = build(run_cli, root)
    assert fake_judge.stats()["requests"] == 5 + 3  # every first pass, then close, even and biased swapped
    d = rows_of(root)
    assert {k for k, r in d.items() if r["bias_checked"]} == {"close", "even", "biased"}
    assert {k for k, r in d.items() if r["bias_check_skipped"]} == {"clear", "clear2"}
    assert (d["biased"]["decision"], d["biased"]["reason"]) == ("drop", "position_bias")
    assert (d["clear"]["decision"], d["clear"]["reason"]) == ("keep", "judge_agrees")
    assert d["clear2"]["reason"] == "judge_prefers_rejected"  # not re-checked: passes the bias check
    assert (d["close"]["decision"], d["close"]["reason"]) == ("keep", "judge_agrees")
    assert d["even"]["reason"] == "tie"
    s = summary_json(root)
    assert s["position_bias"] == {"checked": 3, "verdict_changed": 1, "rate": 0.3333,
                                  "not_rechecked": 2, "swapped_requests_saved": 2}
    assert ("position bias: verdict changed on 1 of 3 swapped pairs (33%); 2 clear pairs not re-checked "
            "(2 swapped requests saved)") in result.output

    # Nothing changed: nothing sent again (a clear pair without a swapped pass is complete).
    fake_judge.reset()
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 0


def test_a_wider_margin_rechecks_more_and_a_margin_of_zero_only_ties(tmp_path, run_cli, fake_judge):
    fake_judge.control(position_ratings=[4, 3])
    root = copy_example(tmp_path, fake_judge, rows=ROWS,
                        vars={"check_position_bias": "uncertain", "bias_check_margin": 3})
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 5 + 4  # clear2 (gap 3) too; clear (gap 4) not
    root0 = copy_example(tmp_path / "zero", fake_judge, rows=ROWS,
                         vars={"check_position_bias": "uncertain", "bias_check_margin": 0})
    build(run_cli, root0)
    assert {k for k, r in rows_of(root0).items() if r["bias_checked"]} == {"even"}

    # every pair clear: nothing re-checked, and the summary says so instead of failing on a rate of none
    clear = [pair("clear", 5, 1), pair("clear2", 1, 4)]
    root_clear = copy_example(tmp_path / "clear", fake_judge, rows=clear,
                              vars={"check_position_bias": "uncertain", "bias_check_margin": 1})
    result, _ = build(run_cli, root_clear)
    assert summary_json(root_clear)["position_bias"] == {"checked": 0, "verdict_changed": 0, "rate": None,
                                                         "not_rechecked": 2, "swapped_requests_saved": 2}
    assert ("position bias: verdict changed on 0 of 0 swapped pairs (none re-checked); 2 clear pairs not "
            "re-checked (2 swapped requests saved)") in result.output


def test_switching_from_uncertain_to_true_adds_the_missing_swapped_passes(tmp_path, run_cli, fake_judge):
    fake_judge.control(position_ratings=[4, 3])
    root = copy_example(tmp_path, fake_judge, rows=ROWS, vars={"check_position_bias": "uncertain"})
    build(run_cli, root)
    fake_judge.reset()
    result, _ = build(run_cli, root, "--vars", '{"check_position_bias": true}')
    # the first passes and the three swapped ones come from the judgment cache; the two clear pairs are asked
    assert fake_judge.stats()["requests"] == 2
    d = rows_of(root)
    assert all(r["bias_checked"] for r in d.values())
    assert all(r["bias_check_skipped"] is None for r in d.values())
    s = summary_json(root)
    assert s["position_bias"] == {"checked": 5, "verdict_changed": 1, "rate": 0.2}


def test_a_bad_bias_check_value_is_one_line(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, rows=ROWS)
    result = run_cli("build", "--project-dir", str(root), "--vars", '{"check_position_bias": "sometimes"}')
    assert result.exit_code == 2
    assert "check_position_bias" in result.output and "uncertain" in result.output
    assert "Traceback" not in result.output
    root2 = copy_example(tmp_path / "m", fake_judge, rows=ROWS,
                         vars={"check_position_bias": "uncertain", "bias_check_margin": "one"})
    result = run_cli("build", "--project-dir", str(root2))
    assert result.exit_code == 2
    assert "bias_check_margin must be a number" in result.output
