"""Prometheus-style grading for SFT data, through SQL and the same judge UDF machinery (cache included)."""

from __future__ import annotations

import pytest

from judge_fixtures import build, judge_project, judged
from prefclean.judge.parsing import parse_verdict

ABSOLUTE = """{{ config(materialized='table') }}
select id, {{ judge_absolute('instruction', 'response', 'Is the answer factually correct?', reference='reference',
                             judge='fake') }} as g
from {{ source('pairs') }}"""
RELATIVE = """{{ config(materialized='table') }}
select id, {{ judge_relative('instruction', 'a', 'b', 'Which answer is more helpful?', judge='fake') }} as g
from {{ source('pairs') }}"""


def test_absolute_grading_with_and_without_reference(make_project, run_cli, fake_judge):
    fake_judge.control(record_prompts=True)
    rows = [{"id": 1, "instruction": "2+2?", "response": "4 [[rate=5]]", "reference": "4"},
            {"id": 2, "instruction": "capital of France?", "response": "Lyon [[rate=1]]", "reference": None}]
    root = judge_project(make_project, fake_judge, rows, models={"graded": ABSOLUTE})
    result, _ = build(run_cli, root)
    out = {r["id"]: r["g"] for r in judged(root, "select id, g from graded order by id")}
    assert out[1]["ratings"] == [5] and out[2]["ratings"] == [1]
    assert out[1]["task"] == "prometheus-absolute" and out[1]["error"] is None
    assert out[1]["rationales"] == ["the response earns 5."]
    assert out[1]["aspect"] == "Is the answer factually correct?"
    prompts = sorted(fake_judge.stats()["prompts"])
    with_reference = [p for p in prompts if "<reference_answer" in p]
    assert len(prompts) == 2 and len(with_reference) == 1 and "2+2?" in with_reference[0]
    assert all("Is the answer factually correct?" in p for p in prompts)

    fake_judge.reset()
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 0  # cached like any judgment


def test_relative_grading_picks_a_winner(make_project, run_cli, fake_judge):
    rows = [{"id": 1, "instruction": "q1", "a": "good [[rate=5]]", "b": "bad [[rate=2]]"},
            {"id": 2, "instruction": "q2", "a": "bad [[rate=1]]", "b": "good [[rate=4]]"}]
    root = judge_project(make_project, fake_judge, rows, models={"compared": RELATIVE})
    build(run_cli, root)
    out = {r["id"]: r["g"] for r in judged(root, "select id, g from compared order by id")}
    assert (out[1]["winner"], out[2]["winner"]) == (1, 2)
    assert out[1]["ratings"] is None and out[1]["error"] is None and "[RESULT] A" in out[1]["raw"]
    assert out[2]["rationales"] == ["A earns 1, B earns 4."]


def test_prometheus_failures_are_per_row(make_project, run_cli, fake_judge):
    fake_judge.control(garbage_if_contains="HOPELESS")
    rows = [{"id": 1, "instruction": "q1", "a": "x [[rate=5]]", "b": "y [[rate=2]]"},
            {"id": 2, "instruction": "HOPELESS", "a": "x", "b": "y"}]
    root = judge_project(make_project, fake_judge, rows, models={"compared": RELATIVE})
    build(run_cli, root)
    out = {r["id"]: r["g"] for r in judged(root, "select id, g from compared order by id")}
    assert out[1]["winner"] == 1
    assert out[2]["winner"] is None and "no [RESULT]" in out[2]["error"] and out[2]["raw"]


@pytest.mark.parametrize("raw, relative, expected", [
    ("Feedback: solid. [RESULT] 4", False, (4, "solid.", None)),
    ("Feedback: meh [RESULT]: 2.", False, (2, "meh", None)),
    ("**Feedback:** good [RESULT] **5**", False, (5, "good", None)),
    ("Feedback: x [RESULT] 4.5", False, (None, "x", "non-integer rating 4.5")),
    ("Feedback: x [RESULT] 7", False, (None, "x", "rating 7 out of range 1-5")),
    ("Feedback: first [RESULT] 2 ... on reflection [RESULT] 3", False, (3, None, None)),
    ("Feedback: B is better. [RESULT] B", True, ("B", "B is better.", None)),
    ("Feedback: a [RESULT] a", True, ("A", "a", None)),
    ("Feedback: tie [RESULT] C", True, (None, "tie", "result 'C' is not A or B")),
    ("I like both.", True, (None, "I like both.", "no [RESULT] in the answer")),
    ("", False, (None, None, "empty answer")),
])
def test_parse_verdict(raw, relative, expected):
    got = parse_verdict(raw, relative=relative)
    assert got[0] == expected[0] and got[2] == expected[2]
    if expected[1] is not None:
        assert got[1] == expected[1]
