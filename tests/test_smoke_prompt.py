"""The offline smoke-test judge's compact prompt and answer (issue 16 §3): a short prompt that starts like every
other (llama.cpp reuses the evaluated prefix), a headerless answer the parser reads, a judge identity of its own,
and a project's own ultrafeedback.jinja still rendered as it is."""

from __future__ import annotations

import re
from pathlib import Path

from prefclean.judge.grammar import compact_ratings_grammar
from prefclean.judge.identity import template_hash
from prefclean.judge.judges import is_smoke_test, smoke_test_judge
from prefclean.judge.tasks import make_task
from prefclean.project import JudgeConfig

LONG = "word " * 200


def user_prompt(task, instruction, generations):
    return task.prompt(instruction, generations, "overall-rating", None).messages[-1]["content"]


def test_the_smoke_test_judge_renders_a_short_prompt_whose_start_every_row_shares():
    full, compact = make_task("ultrafeedback", None), make_task("ultrafeedback", None, compact=True)
    one, two = user_prompt(compact, "Q1?", ["a", "b"]), user_prompt(compact, "Q2?", [LONG, "c"])
    assert len(user_prompt(compact, LONG, [LONG, LONG])) < len(user_prompt(full, LONG, [LONG, LONG])) / 3
    assert one[:one.index("Instruction:")] == two[:two.index("Instruction:")]  # the shared prefix
    assert LONG.strip() not in two and "word word" in two  # each text cut short
    assert "Q1?" in one and "Answer 2: b" in one


def test_a_pair_and_its_swapped_order_share_the_prompt_up_to_the_first_text():
    compact = make_task("ultrafeedback", None, compact=True)
    pair, swapped = user_prompt(compact, "Q1?", ["alpha", "beta"]), user_prompt(compact, "Q1?", ["beta", "alpha"])
    shared = len(pair[:pair.index("Answer 1:")])
    assert pair[:shared] == swapped[:shared] and "Q1?" in pair[:shared]  # llama.cpp evaluates only the texts again


def test_the_compact_grammar_has_short_labels_and_its_answers_parse():
    compact = make_task("ultrafeedback", None, compact=True)
    grammar = compact.grammar(2)
    assert "#### Output" not in grammar and grammar == compact_ratings_grammar(2, compact.compact_words)
    assert "#### Output for Text 2" in make_task("ultrafeedback", None).grammar(2)
    verdict = compact.parse("Score:4\nReason: clear\nScore:2\nReason: wrong\n", 2)
    assert verdict.error is None and verdict.ratings == [4, 2] and verdict.rationales == ["clear", "wrong"]
    assert verdict.winner == 1


def test_only_the_built_in_smoke_test_judge_is_compact():
    assert is_smoke_test(smoke_test_judge())
    named = JudgeConfig(name="smoke-test", engine="llamacpp", model="models/judge.gguf")
    assert not is_smoke_test(named)  # a project's judge of that name renders the real prompt


def test_the_compact_prompt_has_its_own_identity_and_a_project_template_wins(tmp_path: Path):
    assert template_hash(None, "ultrafeedback", True) != template_hash(None, "ultrafeedback")
    (tmp_path / "judge_templates").mkdir()
    (tmp_path / "judge_templates" / "ultrafeedback.jinja").write_text("Mine: {{ instruction }}", encoding="utf-8")
    own = make_task("ultrafeedback", tmp_path, compact=True)
    assert own.substitutes == {} and user_prompt(own, "Q?", ["a", "b"]) == "Mine: Q?"
    assert template_hash(tmp_path, "ultrafeedback", True) != template_hash(None, "ultrafeedback", True)
    assert re.fullmatch(r"[0-9a-f]{16}", template_hash(tmp_path, "ultrafeedback", True))
