"""The openai and hf-inference engines against a real inference server: llama-cpp-python's own
OpenAI-compatible server with the tiny SmolLM2 GGUF, on 127.0.0.1. The same project is built twice,
changing only its judge's `engine:` line, end to end through `prefclean build`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'prefclean[local]')")
for _module in ("fastapi", "uvicorn", "sse_starlette", "pydantic_settings", "starlette_context"):
    pytest.importorskip(_module, reason="llama_cpp.server needs pip install 'llama-cpp-python[server]'")

from prefclean.errors import JudgeError  # noqa: E402

from servers.llama_server import TINY_PAIRS, LlamaServer, free_port, write_judge_project  # noqa: E402

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def server():
    from prefclean.judge.engines.llamacpp import default_gguf

    try:
        gguf = default_gguf()
    except JudgeError as exc:
        pytest.skip(str(exc))
    with LlamaServer(gguf, n_ctx=2048) as srv:
        yield srv


def build(root: Path, *args: str, offline: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_TOKEN": "", "NO_COLOR": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-m", "prefclean.cli", *args,
                           "--project-dir", str(root)], env=env, capture_output=True, text=True, timeout=300)


def rows(root: Path) -> list[tuple]:
    with duckdb.connect(str(root / "target" / "tiny.duckdb"), read_only=True) as con:
        return con.sql("select id, j.ratings, j.error, j.raw, j.judge, j.prompt_tokens, j.completion_tokens "
                       "from judged order by id").fetchall()


def judge_lines(engine: str, url: str) -> list[str]:
    # send_grammar: the openai engine passes the task's GBNF, which llama_cpp.server applies;
    # InferenceClient has no such field, so the hf-inference run samples freely.
    return [f"engine: {engine}", f"base_url: {url}", "model: smollm2", "max_tokens: 96", "temperature: 0",
            "max_retries: 0", "parse_retries: 0", "concurrency: 1", "send_grammar: true"]


def test_same_project_through_openai_then_hf_inference(server, tmp_path):
    root = write_judge_project(tmp_path / "p", judge_lines("openai", server.url), TINY_PAIRS[:2],
                               short_prompt=True)
    first = build(root, "build")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "judge j (openai smollm2 at http://127.0.0.1:" in first.stdout
    for _, ratings, error, raw, judge, prompt_tokens, completion_tokens in rows(root):
        assert error is None, raw  # grammar-constrained by the server: always parses
        assert len(ratings) == 2 and all(1 <= r <= 5 for r in ratings)
        assert judge == "j" and prompt_tokens > 30 and completion_tokens > 10

    # The engine changes. Same server, now through huggingface_hub's InferenceClient. `send_grammar` is an
    # option of the openai engine only: left in place it is an error naming it, not silently ignored.
    yml = root / "prefclean.yml"
    text = yml.read_text()
    assert text.count("engine: openai") == 1 and text.count("send_grammar: true") == 1
    yml.write_text(text.replace("engine: openai", "engine: hf-inference"))
    refused = build(root, "build", offline=False)
    assert refused.returncode == 2 and "`judges.j.send_grammar` is not an option of the hf-inference engine" in \
        refused.stderr, refused.stdout + refused.stderr
    # InferenceClient sends no grammar; a JSON response_format (which llama_cpp.server applies) with ratings only
    # keeps the 135M model's answers readable (a judge whose every answer is unreadable fails its model).
    yml.write_text(yml.read_text().replace("send_grammar: true", "structured_output: json_object\n    rationale: none"))
    # huggingface_hub refuses every request in HF_HUB_OFFLINE mode, even to 127.0.0.1, so not offline here.
    second = build(root, "build", offline=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "judge j (hf-inference smollm2 at http://127.0.0.1:" in second.stdout
    judged = rows(root)
    assert len(judged) == 2
    for _, ratings, error, raw, judge, prompt_tokens, completion_tokens in judged:
        assert raw and completion_tokens and prompt_tokens > 30, (raw, error)
        assert error is None and len(ratings) == 2 and all(1 <= r <= 5 for r in ratings), (raw, error)


def test_unreachable_url_fails_the_model_in_one_line_and_judges_says_so(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    root = write_judge_project(tmp_path / "p", judge_lines("openai", url), TINY_PAIRS[:1])
    result = build(root, "build")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 1  # every request failed: a failed model, not a table of failures
    [line] = [line for line in result.stdout.splitlines() if " ERROR " in line]
    assert "every request failed (1 of 1)" in line and f"cannot reach {url}:" in line, line
    listing = build(root, "judges")
    assert "Traceback" not in listing.stdout + listing.stderr
    assert f"UNAVAILABLE: cannot reach {url}" in listing.stdout + listing.stderr
