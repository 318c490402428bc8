"""check_position_bias: uncertain — the swapped pass only where it can change a decision: close pairs (the
panel's mean ratings at most bias_check_margin apart) that the first pass would keep, and with
bias_check_direction auto only those whose winner sat in the position the judge tilts to. Counted at the fake
judge; the audit's bias_check column, the summary's counts, rebuilds and changed settings."""

from __future__ import annotations

import json

from judge_fixtures import build, copy_example, judged, summary_json


def pair(name, chosen_rating, rejected_rating, tag=""):
    return {"system": "", "instruction": f"question {name}",
            "chosen": f"chosen answer {name} [[rate={chosen_rating}]]{tag}",
            "rejected": f"rejected answer {name} [[rate={rejected_rating}]]{tag}"}


# clear: gaps 4, 3; close and kept: close (4-3); close but dropped whatever the swap says: even (a tie),
# poor (2-1: both poor), mislabelled (3-4: rejected preferred, no allow_flip)
ROWS = [pair("clear", 5, 1), pair("clear2", 1, 4), pair("close", 4, 3), pair("even", 3, 3), pair("poor", 2, 1),
        pair("mislabelled", 3, 4)]
UNCERTAIN = {"check_position_bias": "uncertain", "bias_check_margin": 1}


def rows_of(root):
    rows = judged(root, "select instruction, \"order\", decision, reason, bias_checked, bias_check_skipped, "
                        "bias_check, position_flipped from pair_decisions order by instruction")
    return {r["instruction"].split()[-1]: r for r in rows}


def test_uncertain_rechecks_only_the_close_pairs_the_first_pass_would_keep(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, rows=ROWS, vars=UNCERTAIN)
    result, _ = build(run_cli, root)
    assert fake_judge.stats()["requests"] == 6 + 1  # every first pass, then only close swapped
    d = rows_of(root)
    assert {k: r["bias_check"] for k, r in d.items()} == {
        "clear": "clear", "clear2": "clear", "close": "swapped", "even": "would_drop", "poor": "would_drop",
        "mislabelled": "would_drop"}
    assert {k for k, r in d.items() if r["bias_check_skipped"]} == set(d) - {"close"}
    assert [(d[k]["decision"], d[k]["reason"]) for k in ("close", "even", "poor", "mislabelled")] == [
        ("keep", "judge_agrees"), ("drop", "tie"), ("drop", "both_poor"), ("drop", "judge_prefers_rejected")]
    pb = summary_json(root)["position_bias"]
    assert pb["checked"] == 1 and pb["not_rechecked"] == 5 and pb["swapped_requests_saved"] == 5
    assert pb["skipped"] == {"clear": 2, "would_drop": 3}
    assert pb["tilt"]["favours"] is None  # 5 decisive verdicts: too few to say
    assert ("position bias: verdict changed on 0 of 1 swapped pairs (0%); 5 pairs (2 clear, 3 dropped anyway) not "
            "re-checked (5 swapped requests saved)") in result.output

    # Nothing changed: nothing sent again (a skipped pair is complete under the same signature).
    fake_judge.reset()
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 0

    # allow_flip keeps the mislabelled pair (as a flip), so it is re-checked now: one request, the rest cached
    build(run_cli, root, "--vars", '{"allow_flip": true}')
    assert fake_judge.stats()["requests"] == 1
    assert rows_of(root)["mislabelled"]["bias_check"] == "swapped"


def test_a_wider_margin_rechecks_the_new_close_kept_pairs_and_going_back_costs_nothing(tmp_path, run_cli, fake_judge):
    rows = ROWS + [pair("gap2", 5, 3), pair("gap2b", 4, 2)]
    root = copy_example(tmp_path, fake_judge, rows=rows, vars=UNCERTAIN)
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 8 + 1
    fake_judge.reset()
    build(run_cli, root, "--vars", '{"bias_check_margin": 2}')  # a new signature: every row re-evaluated
    assert fake_judge.stats()["requests"] == 2  # the gap-2 pairs' swapped passes; first passes from the cache
    assert {k for k, r in rows_of(root).items() if r["bias_checked"]} == {"close", "gap2", "gap2b"}
    fake_judge.reset()
    build(run_cli, root)  # back to 1: the gap-2 pairs count as clear again, nothing is asked
    assert fake_judge.stats()["requests"] == 0
    assert rows_of(root)["gap2"]["bias_check"] == "clear"
    # a margin of 0 re-checks ties only, and a tie is dropped whatever the swap says: no swapped pass at all
    build(run_cli, root, "--vars", '{"bias_check_margin": 0}')
    assert fake_judge.stats()["requests"] == 0
    assert {r["bias_check"] for r in rows_of(root).values()} == {"clear", "would_drop"}


def tilted_rows():
    """40 pairs of equal quality that a judge biased to the first position rates 4-3 for whichever it shows
    first, and 20 fair close pairs (4-3 for chosen, unbiased): 50-60 decisive first verdicts won in position 1."""
    return ([pair(f"tie{i:02d}", 3, 3, " [[biased]]") for i in range(40)]
            + [pair(f"fair{i:02d}", 4, 3) for i in range(20)])


def test_a_biased_judge_is_rechecked_only_where_its_tilt_can_flip_and_every_flip_is_still_caught(
        tmp_path, run_cli, fake_judge):
    fake_judge.control(first_position_bonus=1)
    root = copy_example(tmp_path, fake_judge, rows=tilted_rows(), vars=UNCERTAIN)
    result, _ = build(run_cli, root)
    d = rows_of(root)
    first = {k for k, r in d.items() if r["order"][0] == "chosen"}  # chosen shown first: kept at the first pass
    ties, fair = {k for k in d if k.startswith("tie")}, {k for k in d if k.startswith("fair")}
    assert ties & first and ties - first and fair & first and fair - first, "the shuffle must give both orders"
    assert fake_judge.stats()["requests"] == 60 + len(ties & first) + len(fair & first)
    assert {k for k, r in d.items() if r["bias_check"] == "swapped"} == (ties | fair) & first
    # the fair pairs whose winner sat second: a judge that favours the first cannot have put it there
    assert {k for k, r in d.items() if r["bias_check"] == "against_tilt"} == fair - first
    # the biased verdicts the first pass would keep: every one caught by its swapped pass and dropped
    assert all((d[k]["decision"], d[k]["reason"]) == ("drop", "position_bias") for k in ties & first)
    assert all(d[k]["decision"] == "keep" for k in fair)
    pb = summary_json(root)["position_bias"]
    assert pb["tilt"]["favours"] == "first" and pb["tilt"]["first_wins"] == 40 + len(fair & first)
    assert pb["skipped"] == {"would_drop": len(ties - first), "against_tilt": len(fair - first)}
    assert "it favours the first position" in result.output and "against the tilt" in result.output

    # direction both: the fair pairs shown second are re-checked too (a new signature; the cache answers the rest)
    fake_judge.reset()
    build(run_cli, root, "--vars", '{"bias_check_direction": "both"}')
    assert fake_judge.stats()["requests"] == len(fair - first)
    assert not [k for k, r in rows_of(root).items() if r["bias_check"] == "against_tilt"]


def test_a_fair_judge_is_rechecked_in_both_directions(tmp_path, run_cli, fake_judge):
    # shown first and second 25 times each (the shuffle's coin for these texts): no tilt at all
    rows = [pair(f"close{i:02d}", 4, 3) for i in range(30)] + [pair(f"wide{i:02d}", 5, 1) for i in range(20)]
    root = copy_example(tmp_path, fake_judge, rows=rows, vars=UNCERTAIN)
    build(run_cli, root)
    d = rows_of(root)
    pb = summary_json(root)["position_bias"]
    assert pb["tilt"]["first_wins"] + pb["tilt"]["second_wins"] == 50 and pb["tilt"]["favours"] is None
    assert fake_judge.stats()["requests"] == 50 + 30  # every close kept pair, whichever position its winner had
    assert {r["bias_check"] for k, r in d.items() if k.startswith("close")} == {"swapped"}
    assert {d[k]["order"][0] for k in d if k.startswith("close")} == {"chosen", "rejected"}


def test_the_tilt_of_a_small_incremental_batch_leans_on_the_rows_judged_before(tmp_path, run_cli, fake_judge):
    fake_judge.control(first_position_bonus=1)
    root = copy_example(tmp_path, fake_judge, rows=tilted_rows(), vars=UNCERTAIN)
    build(run_cli, root)
    # four new fair close pairs: alone, 4 verdicts show no tilt; with the 60 judged before, the tilt holds
    new = [pair(f"new{i}", 4, 3) for i in range(4)]
    config = root / "prefclean.yml"
    import yaml
    c = yaml.safe_load(config.read_text(encoding="utf-8"))
    c["sources"]["pairs"]["rows"] = tilted_rows() + new
    config.write_text(yaml.safe_dump(c, sort_keys=False), encoding="utf-8")
    fake_judge.reset()
    build(run_cli, root)
    d = rows_of(root)
    shown_first = {k for k in d if k.startswith("new") and d[k]["order"][0] == "chosen"}
    assert 0 < len(shown_first) < 4, "the shuffle must give both orders"
    assert fake_judge.stats()["requests"] == 4 + len(shown_first)
    assert {k for k in d if k.startswith("new") and d[k]["bias_check"] == "against_tilt"} == \
        {f"new{i}" for i in range(4)} - shown_first


def test_a_failed_swapped_pass_is_retried_by_the_next_build(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, rows=ROWS, vars=UNCERTAIN)
    build(run_cli, root, "--select", "+shuffled_pairs")  # the order the judge will see, before asking it
    order = judged(root, "select \"order\" from shuffled_pairs where instruction = 'question close'")[0]["order"]
    shown_second = "rejected answer close" if order[0] == "chosen" else "chosen answer close"
    fake_judge.control(fail_if_contains=f"<text 1>\n{shown_second}")  # only the swapped pass shows it first
    build(run_cli, root)
    d = rows_of(root)
    assert (d["close"]["bias_check"], d["close"]["reason"]) == ("swapped", "judge_failed")
    fake_judge.control(fail_if_contains=None)
    fake_judge.reset()
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 1  # the swapped pass again; its first pass is cached
    assert rows_of(root)["close"]["reason"] == "judge_agrees"


def test_switching_from_uncertain_to_true_adds_the_missing_swapped_passes(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, rows=ROWS, vars=UNCERTAIN)
    build(run_cli, root)
    fake_judge.reset()
    build(run_cli, root, "--vars", '{"check_position_bias": true}')
    # the first passes and the one swapped pass come from the judgment cache; the five others are asked
    assert fake_judge.stats()["requests"] == 5
    d = rows_of(root)
    assert all(r["bias_checked"] and r["bias_check"] == "swapped" for r in d.values())
    assert all(r["bias_check_skipped"] is None for r in d.values())
    s = summary_json(root)
    assert s["position_bias"] == {"checked": 6, "verdict_changed": 0, "rate": 0.0}


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
    result = run_cli("build", "--project-dir", str(root), "--vars", json.dumps({"bias_check_direction": "left"}))
    assert result.exit_code == 2 and "bias_check_direction" in result.output and "both" in result.output
    root3 = copy_example(tmp_path / "d", fake_judge, rows=ROWS, vars={**UNCERTAIN, "bias_check_direction": "left"})
    result = run_cli("build", "--project-dir", str(root3))
    assert result.exit_code == 2
    assert "bias_check_direction must be 'auto' or 'both', got \"left\"" in result.output
    assert "Traceback" not in result.output


def test_a_panel_is_rechecked_as_one_and_only_where_it_would_keep(tmp_path, run_cli, fake_judge):
    from judge_fixtures import judge_config
    rows = ROWS + [{"system": "", "instruction": "question split", "chosen": "chosen answer split [[rate:fake-judge=4]] "
                    "[[rate:fake-other=3]] [[rate=3]]", "rejected": "rejected answer split [[rate:fake-other=4]] [[rate=3]]"}]
    root = copy_example(tmp_path, fake_judge, rows=rows, vars={**UNCERTAIN, "judges": ["fake", "other"]},
                        extra_judges={"other": judge_config(fake_judge, model="fake-other")})
    build(run_cli, root)
    # both members judge every pair; close is re-checked by both; split (4-3 vs 3-4: the panel disagrees, mean
    # tie) is dropped whatever the swap says
    assert fake_judge.stats()["requests"] == 2 * 7 + 2
    d = rows_of(root)
    assert d["close"]["bias_check"] == "swapped" and d["split"]["bias_check"] == "would_drop"
    fake_judge.reset()
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 0


def test_a_three_judge_panels_mean_gap_of_exactly_the_margin_is_that_gap_not_its_float_rounding(
        tmp_path, run_cli, fake_judge):
    """Means of three integer ratings are thirds: 8/3 - 5/3 is 0.9999999999999998 in floating point and 7/3 - 4/3
    is 1.0000000000000002. A gap of exactly min_margin is not a tie, and one of exactly bias_check_margin is close."""
    from judge_fixtures import judge_config

    def rated(name, chosen, rejected):  # each judge's rating of each response, by the judge's model
        marks = lambda ratings: " ".join(f"[[rate:fake-{m}={r}]]" for m, r in zip("abc", ratings))
        return {"system": "", "instruction": f"question {name}", "chosen": f"chosen answer {name} {marks(chosen)}",
                "rejected": f"rejected answer {name} {marks(rejected)}"}

    rows = [rated("third", (3, 3, 2), (2, 2, 1)),  # every judge: chosen by 1 -> kept, a gap of 1: re-checked
            rated("close", (3, 2, 2), (2, 1, 1))]  # the same
    judges = {m: judge_config(fake_judge, model=f"fake-{m}") for m in "abc"}
    root = copy_example(tmp_path, fake_judge, rows=rows, vars={**UNCERTAIN, "judges": list("abc")},
                        extra_judges=judges)
    build(run_cli, root)
    d = rows_of(root)
    assert {k: (r["decision"], r["reason"], r["bias_check"]) for k, r in d.items()} == {
        "third": ("keep", "judge_agrees", "swapped"), "close": ("keep", "judge_agrees", "swapped")}
    assert fake_judge.stats()["requests"] == 3 * 2 * 2


def test_pair_decisions_built_apart_with_other_thresholds_than_judged_pairs_is_refused(tmp_path, run_cli, fake_judge):
    """judged_pairs skipped 'close' (4-3) as a tie at min_margin 2; pair_decisions alone at min_margin 1 would keep
    it with no swapped pass (reason 'against_tilt', no tilt at all). It says to build judged_pairs too."""
    root = copy_example(tmp_path, fake_judge, rows=ROWS, vars=UNCERTAIN)
    build(run_cli, root, "--vars", '{"min_margin": 2}')
    result = run_cli("build", "--project-dir", root, "--select", "pair_decisions")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "judged with other settings" in result.output and "prefclean build -s judged_pairs+" in result.output
    fake_judge.reset()
    build(run_cli, root, "--select", "judged_pairs+")
    assert fake_judge.stats()["requests"] == 1  # close's swapped pass; the first passes from the cache
    d = rows_of(root)
    assert (d["close"]["decision"], d["close"]["bias_check"]) == ("keep", "swapped")
    build(run_cli, root, "--select", "pair_decisions")  # the same settings: built alone as before
