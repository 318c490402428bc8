"""The calibration report on a real build: a panel of three fake judges over the example project, human reviews
written into human.reviews, then the per-judge and panel splits, the threshold sweeps (min_agreement and the
bias check included) and the build's summary.json section checked against a hand computation; the dashboard's
calibration page served from the same project.

Each kind of pair has ratings the test decides (tests/servers/fake_judge.py markers):
  A  every judge 5 vs 2                        -> all say chosen; kept
  B  fake and gamma 5 vs 2, beta 2 vs 4        -> beta says rejected; panel chosen at agreement 2/3
  C  every judge 2 vs 4                        -> all say rejected (judge_prefers_rejected)
  D  no marker: rated by position (5, 2)       -> the verdict flips when swapped (position_bias)
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import duckdb
import pytest

from judge_fixtures import copy_example, judge_config
from prefclean.calibration import cohen_kappa
from servers.fake_judge import FakeJudge
from test_dashboard import cli, start_dashboard, stop

KINDS = {"A": (" [[rate=5]]", " [[rate=2]]"),
         "B": (" [[rate:fake-beta=2]] [[rate=5]]", " [[rate:fake-beta=4]] [[rate=2]]"),
         "C": (" [[rate=2]]", " [[rate=4]]"),
         "D": ("", "")}
# (kind, the humans' verdicts in review order; the last one counts): 11 calibration pairs, one of them
# reviewed twice, and one uncertain-queue pair that must be left out
CALIBRATION = [("A", ["chosen", "chosen"]), ("A", ["chosen"]), ("A", ["chosen"]), ("A", ["rejected"]),
               ("B", ["chosen"]), ("B", ["rejected"]), ("B", ["rejected"]),
               ("C", ["rejected"]), ("C", ["rejected"]), ("D", ["chosen"]), ("D", ["chosen"])]
UNCERTAIN = ("A", ["rejected"])


def rows() -> list[dict]:
    out = []
    for i, (kind, _) in enumerate(CALIBRATION + [UNCERTAIN]):
        c, r = KINDS[kind]
        out.append({"system": "", "instruction": f"question {i} ({kind})", "chosen": f"answer {i} one{c}",
                    "rejected": f"answer {i} two{r}"})
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with FakeJudge() as judge:
        judge.control(position_ratings=[5, 2])
        root = copy_example(tmp_path_factory.mktemp("calib"), judge, rows=rows(),
                            vars={"judges": ["fake", "beta", "gamma"]},
                            extra_judges={"beta": judge_config(judge, model="fake-beta"),
                                          "gamma": judge_config(judge, model="fake-gamma")})
        done = cli("build", "--project-dir", str(root))
        assert done.returncode == 0, done.stdout + done.stderr
        db = root / "target" / "prefclean.duckdb"
        con = duckdb.connect(str(db))
        order = dict(con.execute("select instruction, \"order\" from pair_decisions").fetchall())
        ids = dict(con.execute("select instruction, pair_id from pair_decisions").fetchall())
        con.execute("create schema human")
        con.execute('create table human.reviews (pair_id varchar, "user" varchar, status varchar, queue varchar, '
                    'ratings integer[], rationales varchar[], ranking varchar[], "order" varchar[], '
                    'inserted_at timestamp, updated_at timestamp)')
        minute = 0
        for i, (kind, verdicts) in enumerate(CALIBRATION + [UNCERTAIN]):
            question = f"question {i} ({kind})"
            for user, v in zip(["ann", "bob"], verdicts):
                minute += 1
                rating = {"chosen": 5, "rejected": 1} if v == "chosen" else {"chosen": 1, "rejected": 5}
                shown = [rating[label] for label in order[question]]  # ratings in the order the reviewer saw
                at = datetime(2026, 1, 1, 12, minute)
                con.execute("insert into human.reviews values (?, ?, 'submitted', ?, ?, null, null, ?, ?, ?)",
                            [ids[question], user, "uncertain" if i == len(CALIBRATION) else "calibration",
                             shown, order[question], at, at])
        con.close()
        again = cli("build", "--project-dir", str(root))  # the build's summary gets its calibration section
        assert again.returncode == 0, again.stdout + again.stderr
    # a D pair's verdict is the position its chosen response had: rated 5 when shown first
    d_first = [order[f"question {i} (D)"][0] == "chosen" for i, (k, _) in enumerate(CALIBRATION) if k == "D"]
    return root, again.stdout, d_first


def expected_verdicts(d_first: list[bool]) -> dict[str, list[str]]:
    """Each rater's verdict per calibration pair, in CALIBRATION order, by hand from the ratings above."""
    d = ["chosen" if first else "rejected" for first in d_first]
    fake = ["chosen"] * 4 + ["chosen"] * 3 + ["rejected"] * 2 + d
    beta = ["chosen"] * 4 + ["rejected"] * 3 + ["rejected"] * 2 + d
    human = [v[-1] for _, v in CALIBRATION]
    return {"fake": fake, "beta": beta, "gamma": fake, "panel": fake, "human": human}


def test_the_build_summary_carries_the_calibration_of_the_sample_only(project):
    root, output, _ = project
    r = json.loads((root / "target" / "summary.json").read_text())["calibration"]
    assert r["sample"] == "calibration" and r["left_out_uncertain"] == 1
    assert r["reviewed_pairs"] == 11 and r["judge_vs_human"]["pairs"] == 11 and r["too_small"] is True
    assert "calibration: judge vs human on 11 reviewed pairs (calibration sample)" in output
    assert "too few to conclude" in output


def test_each_judge_and_the_panel_are_measured_against_the_humans_by_hand(project):
    root, _, d_first = project
    r = json.loads((root / "target" / "summary.json").read_text())["calibration"]
    v = expected_verdicts(d_first)
    d_right = sum(d_first)
    assert set(r["per_judge"]) == {"fake", "beta", "gamma"}
    # fake/gamma: A 3 of 4, B 1 of 3, C 2 of 2, D the ones shown first; beta: B 2 of 3
    for name, right in (("fake", 6 + d_right), ("gamma", 6 + d_right), ("beta", 7 + d_right)):
        a = r["per_judge"][name]
        assert a["pairs"] == 11 and a["agreement"] == round(right / 11, 4), name
        assert a["kappa"] == round(cohen_kappa(v[name], v["human"]), 4), name
        lo, hi = a["kappa_ci95"]
        assert lo <= a["kappa"] <= hi
    panel = r["judge_vs_human"]
    assert panel["agreement"] == round((6 + d_right) / 11, 4)
    assert panel["kappa"] == round(cohen_kappa(v["panel"], v["human"]), 4)
    assert panel["confusion"]["chosen"] == {"chosen": 4 + d_right, "rejected": 3, "tie": 0}
    assert panel["confusion"]["rejected"] == {"chosen": 2 - d_right, "rejected": 2, "tie": 0}
    assert r["aspects"] == ["overall-rating"] and r["per_aspect"] == {}
    assert r["human_vs_human"]["pairs"] == 1 and r["human_vs_human"]["agreement"] == 1.0


def test_min_agreement_and_the_bias_check_are_swept_with_kept_share_and_precision(project):
    root, _, d_first = project
    t = json.loads((root / "target" / "summary.json").read_text())["calibration"]["thresholds"]
    d_right = sum(d_first)
    ma = {s["min_agreement"]: s for s in t["min_agreement"]["settings"]}
    # 1.0 keeps the four A pairs (3 right); 2/3 adds the three B pairs (1 right)
    assert set(ma) == {0.6666, 1.0} and t["min_agreement"]["current"] == 1.0
    assert (ma[1.0]["kept"], ma[1.0]["share_kept"], ma[1.0]["precision"]) == (4, round(4 / 11, 4), 0.75)
    assert (ma[0.6666]["kept"], ma[0.6666]["precision"]) == (7, round(4 / 7, 4))
    assert t["min_agreement"]["suggested"] == 1.0
    bias = {s["drop_position_biased"]: s for s in t["drop_position_biased"]["settings"]}
    assert t["drop_position_biased"]["flipped"] == 2 and t["drop_position_biased"]["checked"] == 11
    # keeping position-flipped pairs adds the D pairs whose chosen response was shown first (the humans agree)
    assert (bias[True]["kept"], bias[True]["precision"]) == (4, 0.75)
    assert bias[False]["kept"] == 4 + d_right and bias[False]["precision"] == round((3 + d_right) / (4 + d_right), 4)
    assert t["drop_position_biased"]["suggested"] is (d_right == 0)
    assert set(t) == {"min_margin", "poor_max", "min_agreement", "drop_position_biased"}


def test_calibrate_prints_the_splits_the_sweeps_and_the_rule(project):
    root, _, _ = project
    done = cli("calibrate", "--project-dir", str(root))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "sample: the random calibration sample only (1 reviewed pairs of the uncertain queue left out" in out
    assert re.search(r"per judge .*\n    beta: 11 pairs, agreement \d+%, kappa ", out)
    assert "one aspect rated (overall-rating): no per-aspect split" in out
    assert "min_agreement (now 1; suggested 1): 0.6666: keeps 64% at precision 57%, 1: keeps 36% at precision 75%" in out
    assert "drop_position_biased (now true; suggested " in out
    assert "(2 of 11 reviewed pairs judged swapped changed verdict)" in out
    assert "keeps the most pairs among those whose precision is within 0.05 of the best" in out
    assert "suggestions from fewer than 30 pairs are not worth acting on" in out


def test_the_dashboard_calibration_page_draws_the_report(project):
    from test_dashboard import http

    root, _, _ = project
    app = start_dashboard(root)
    try:
        status, html, headers = http(app.url + "calibration")
        assert status == 200 and "script-src 'none'" in headers["Content-Security-Policy"]
        assert '<a href="/calibration" class="active">Calibration</a>' in html
        assert "the random calibration sample only" in html and "Too few to conclude" in html
        assert html.count('class="curve"') == 4  # precision vs share kept, one per threshold
        assert ">0.5–3</text>" in html  # every min_margin keeps the same four pairs: one point for them all
        assert 'id="confusion"' in html and re.search(r'<td class="n heat\d">3</td>', html)
        assert html.count('class="kappa-row"') == 4  # the panel and three judges
        assert html.count("<h2>Confusion: judge ") == 3 and html.count('class="heat"') == 4
        assert "<script" not in html
        status, overview, _ = http(app.url)
        assert '<a href="/calibration">Calibration</a>' in overview
        assert re.search(r'id="calibration-card"><span class="big">[-0-9.]+</span> <a href="/calibration">', overview)
    finally:
        stop(app)


def test_the_calibration_page_says_how_to_get_a_report_when_there_is_none(tmp_path):
    from test_dashboard import http

    root = tmp_path / "empty"
    root.mkdir()
    (root / "prefclean.yml").write_text("name: empty\n")
    app = start_dashboard(root)
    try:
        status, html, _ = http(app.url + "calibration")
        assert status == 200 and 'id="missing"' in html and "No calibration report yet" in html
        assert "prefclean pull argilla NAME" in html and "<svg" not in html
    finally:
        stop(app)
