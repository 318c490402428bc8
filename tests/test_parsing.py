"""Reading ratings out of what judges really write: real answers from shared/data, then the edge cases the
parsing policy (prefclean/judge/parsing.py) documents. A parse never raises; what it cannot read is NULL
with a reason, and the raw answer is kept by the caller."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from prefclean.judge.parsing import parse_ratings, read_rating
from prefclean.judge.tasks import make_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_ANSWERS = SHARED / "judge_answers_real.jsonl"
DISTILABEL_OUTPUTS = SHARED / "ultrafeedback_judge_raw_outputs.distilabel_docs.jsonl"


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.skipif(not REAL_ANSWERS.exists(), reason="shared/data/judge_answers_real.jsonl is not here")
@pytest.mark.parametrize("case", _rows(REAL_ANSWERS), ids=lambda c: c["id"])
def test_real_judge_answers(case):
    n = case["n_responses"]
    parsed = parse_ratings(case["raw"], n)
    expected = case["expected_ratings"] or [None] * n
    assert parsed.ratings == expected
    assert len(parsed.rationales) == n
    if all(r is not None for r in expected):
        assert parsed.error is None
        assert all(parsed.rationales), "every real answer here gives a rationale per response"
    else:
        assert parsed.error


@pytest.mark.skipif(not DISTILABEL_OUTPUTS.exists(), reason="shared/data distilabel outputs are not here")
@pytest.mark.parametrize("case", _rows(DISTILABEL_OUTPUTS), ids=lambda c: c["id"])
def test_real_distilabel_outputs_with_rationales(case):
    parsed = parse_ratings(case["raw_output"], len(case["generations"]))
    assert parsed.ratings == case["parsed_ratings"]
    assert parsed.rationales == case["parsed_rationales"]
    assert parsed.error is None


def sections(*blocks: str) -> str:
    return "\n\n".join(f"#### Output for Text {i}\n{b}" for i, b in enumerate(blocks, 1))


# (answer, n, expected ratings, expected rationales or None to skip, substring of the error or None)
CASES = {
    "bold everywhere": ("**Text 1**\n**Rating:** 4\n**Rationale:** clear and right.\n\n**Text 2**\n"
                        "**Rating:** **2**\n**Rationale:** misses the point.", 2, [4, 2],
                        ["clear and right.", "misses the point."], None),
    "prose around the answer": ("Sure! Here is my evaluation.\n\n" + sections("Rating: 3\nRationale: fine.",
                                "Rating: 5\nRationale: great.") + "\n\nLet me know if you need more.", 2, [3, 5],
                                None, None),
    "N/A": (sections("Rating: N/A\nRationale: empty answer.", "Rating: 4\nRationale: ok."), 2, [None, 4],
            ["empty answer.", "ok."], "text 1"),
    "ratings as words": (sections("Rating: four\nRationale: a.", "Rating: Two\nRationale: b."), 2, [4, 2],
                         ["a.", "b."], None),
    "a half point": (sections("Rating: 4.5\nRationale: a.", "Rating: 2\nRationale: b."), 2, [None, 2], None,
                     "non-integer rating 4.5"),
    "out of range": (sections("Rating: 6\nRationale: a.", "Rating: 0\nRationale: b."), 2, [None, None], None,
                     "out of range"),
    "ten-point scale": (sections("Rating: 3/10\nRationale: a.", "Rating: 4/5\nRationale: b."), 2, [None, 4],
                        None, "scale of 10"),
    "label after the number": (sections("Rating: 5 (Excellent)\nRationale: a.", "Rating: 1 - Poor\nRationale: b."),
                               2, [5, 1], ["a.", "b."], None),
    "label with no number": (sections("Rating: Excellent\nRationale: a.", "Rating: 3\nRationale: b."), 2,
                             [None, 3], None, "no numeric rating"),
    "too many texts rated": (sections("Rating: 5", "Rating: 4", "Rating: 3"), 2, [5, 4], None,
                             "expected 2 ratings, found 3"),
    "too few texts rated": (sections("Rating: 5\nRationale: a."), 2, [5, None], None, "expected 2 ratings, found 1"),
    "missing rationales": (sections("Rating: 4", "Rating: 2"), 2, [4, 2], [None, None], None),
    "sections out of order": ("#### Output for Text 2\nRating: 1\nRationale: b.\n\n#### Output for Text 1\n"
                              "Rating: 5\nRationale: a.", 2, [5, 1], ["a.", "b."], None),
    "no headers": ("Rating: 4\nRationale: a.\nRating: 2\nRationale: b.", 2, [4, 2], ["a.", "b."], None),
    "rationale before rating": ("Rationale: a.\nRating: 4\nRationale: b.\nRating: 2", 2, [4, 2], ["a.", "b."], None),
    "stray rationale, then rating first": ("Rationale: both try.\nRating: 4\nRationale: a.\nRating: 2\nRationale: b.",
                                           2, [4, 2], ["a.", "b."], None),
    "score instead of rating": (sections("Score: 3\nReasoning: a.", "Score: 5\nReasoning: b."), 2, [3, 5],
                                ["a.", "b."], None),
    "JSON in a fence": ('```json\n{"ratings": [3, "4"], "rationales": ["a", "b"]}\n```', 2, [3, 4], ["a", "b"],
                        None),
    "JSON half point": ('{"ratings": [4.5, 2], "rationales": ["a", "b"]}', 2, [None, 2], None, "non-integer"),
    "JSON without ratings": ('{"scores": [1, 2]}', 2, [None, None], None, "no `ratings` list"),
    "plain prose": ("Both answers are fine I guess.", 2, [None, None], None, "no `Rating:` line"),
    "empty": ("   \n", 2, [None, None], None, "empty answer"),
    "one text": (sections("Rating: 5\nRationale: spot on."), 1, [5], ["spot on."], None),
    "multi-line rationale": (sections("Rating: 2\nRationale: wrong date.\nAlso too long.", "Rating: 4\nRationale: ok."),
                             2, [2, 4], ["wrong date.\nAlso too long.", "ok."], None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_parsing_policy(name):
    raw, n, ratings, rationales, error = CASES[name]
    parsed = parse_ratings(raw, n)
    assert parsed.ratings == ratings
    assert len(parsed.rationales) == n
    if rationales is not None:
        assert parsed.rationales == rationales
    if error is None:
        assert parsed.error is None
    else:
        assert parsed.error and error in parsed.error


@pytest.mark.parametrize("value, rating", [
    ("4", 4), ("**4**", 4), ("4 (Very good)", 4), ("4/5", 4), ("four", 4), ("[3]", 3),
    ("N/A", None), ("4.5", None), ("3/10", None), ("0", None), ("6", None), ("Excellent", None), ("", None),
])
def test_read_rating(value, rating):
    got, why = read_rating(value)
    assert got == rating
    assert (why is None) == (rating is not None)


def test_parser_never_raises_on_noise():
    """Random mixes of answer fragments: always n ratings in 1..5 or NULL, and an error whenever one is NULL."""
    fragments = ["#### Output for Text 1", "#### Output for Text 2", "Text 3:", "Rating:", "Rating: 4", "**Rating:**",
                 "Rationale:", "Rationale: ok", "N/A", "4.5", "five", "{", "}", '{"ratings": [1', "```", "[RESULT] 3",
                 "\n", "\n\n", "Type: 2", "Score = 9", "Rating: -1", "Rating: 3/5", "é 漢字", "**", "#"]
    rng = random.Random(7)
    for _ in range(2000):
        raw = " ".join(rng.choice(fragments) for _ in range(rng.randint(0, 14)))
        n = rng.randint(1, 4)
        parsed = parse_ratings(raw, n)
        assert len(parsed.ratings) == n and len(parsed.rationales) == n
        assert all(r is None or 1 <= r <= 5 for r in parsed.ratings)
        if any(r is None for r in parsed.ratings):
            assert parsed.error


def test_task_keeps_partial_results_and_reason():
    verdict = make_task("ultrafeedback", None).parse(sections("Rating: 5", "Rating: N/A"), 2)
    assert verdict.ratings == [5, None] and verdict.winner is None and "text 2" in verdict.error


def _layout_answers():
    """Answers in (or near) the layout the ultrafeedback prompt asks for: every block's parts drawn, rationales
    from characters the readers treat specially (markers, spaces, tabs, field words, fences, other lines)."""
    from hypothesis import strategies as st

    piece = st.sampled_from(list("ab *_\t#:`{}-\né") + ["Rating: 3", "Text 2", "```", "Rationale: x"])
    rationale = st.lists(piece, max_size=12).map("".join)
    block = st.tuples(st.sampled_from(["1", "2", "3", "4", "01"]), st.sampled_from(["1", "3", "5", "0", "4 ", "6"]),
                      st.one_of(st.none(), rationale), st.sampled_from(["", "\n", "\n\n", "\n\n\n"]))

    def render(blocks, lead):
        return lead + "".join(f"#### Output for Text {i}\nRating: {r}" + (f"\nRationale: {why}" if why is not None
                                                                             else "") + "\n" + gap
                              for i, r, why, gap in blocks)

    return st.builds(render, st.lists(block, min_size=1, max_size=4), st.sampled_from(["", " ", "\n"]))


def test_the_one_pass_reader_of_the_asked_layout_gives_what_the_general_reader_gives():
    from hypothesis import example, given, settings
    from hypothesis import strategies as st

    from prefclean.judge.parsing import _as_asked, parse_any

    @settings(max_examples=1500, deadline=None)
    @given(_layout_answers(), st.integers(1, 4))
    @example("#### Output for Text 1\nRating: 3\nRationale: * \t*x\n", 1)  # markers around a tab
    def check(raw, n):
        fast = _as_asked(raw, n)
        if fast is not None:
            general = parse_any(raw, n)
            assert (fast.ratings, fast.rationales, fast.error) == (general.ratings, general.rationales, general.error)

    check()
    # and it does take the answers a grammar-bound judge sends
    assert _as_asked("#### Output for Text 1\nRating: 4\nRationale: fine.\n#### Output for Text 2\nRating: 2\n"
                     "Rationale: **wrong** count\n", 2).rationales == ["fine.", "wrong** count"]
