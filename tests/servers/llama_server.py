"""llama-cpp-python's own OpenAI-compatible server on 127.0.0.1, as a subprocess, for real-server tests.

Why: the openai and hf-inference engines must be shown to work against a real inference server, not only
the fake judge. `python -m llama_cpp.server` serves a GGUF at /v1/chat/completions with no network.

    with LlamaServer(gguf_path) as server:
        server.url   # http://127.0.0.1:PORT/v1, an OpenAI base_url
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .process import ServerProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer(ServerProcess):
    """One thread by default: on a busy machine, llama.cpp threads waiting for each other at every layer
    can make a request 30x slower."""

    stop_timeout = 10.0

    def __init__(self, model: str | Path, *, n_ctx: int = 4096, n_threads: int = 1, alias: str = "smollm2",
                 startup_timeout: float = 120.0):
        self.port = free_port()
        self.alias = alias
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.root}/v1"
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", alias,
             "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx),
             "--n_threads", str(n_threads), "--n_threads_batch", str(n_threads), "--verbose", "False"],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        try:
            self._wait(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited ({self.process.returncode}): {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"llama_cpp.server not ready after {timeout:g}s: {self.log()[-2000:]}")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        super().stop()
        self._log.close()


# Three pairs whose right answer is obvious; `chosen` is the right one.
TINY_PAIRS = [
    {"instruction": "What is 2 + 2?", "chosen": "2 + 2 = 4.", "rejected": "2 + 2 = 5."},
    {"instruction": "What is the capital of France?", "chosen": "Paris.", "rejected": "Berlin."},
    {"instruction": "Name a primary colour.", "chosen": "Red.", "rejected": "Purple is the only primary colour."},
]


# A project may replace the judge's prompt templates; these short ones keep a CPU-bound tiny model fast.
SHORT_TEMPLATES = {
    "ultrafeedback_system.jinja": "You rate answers fairly.",
    "ultrafeedback.jinja": (
        "Rate each answer to the instruction from 1 (bad) to 5 (good).\n"
        "Instruction: {{ instruction }}\n"
        "{% for text in generations %}Text {{ loop.index }}: {{ text }}\n{% endfor %}"
        "For each text, reply with three lines: `#### Output for Text N`, `Rating: R`, `Rationale: why`."),
}


def write_judge_project(root: Path, judge_lines: list[str] | None = None, pairs: list[dict] = TINY_PAIRS,
                        short_prompt: bool = False) -> Path:
    """A project whose one model judges each pair once. `judge_lines`: the YAML lines of one judge named `j`
    ("engine: openai", ...), or None for a project with no judge (the smoke-test judge). `short_prompt`:
    use SHORT_TEMPLATES instead of the built-in prompt (a fifth of its tokens)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    with open(root / "pairs.jsonl", "w", encoding="utf-8") as f:
        for i, pair in enumerate(pairs):
            f.write(json.dumps({"id": i, **pair}) + "\n")
    lines = ["name: tiny", "warehouse: target/tiny.duckdb", "sources:", "  pairs: {type: jsonl, path: pairs.jsonl}"]
    if judge_lines:
        lines += ["judges:", "  j:"] + [f"    {line}" for line in judge_lines]
    (root / "prefclean.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if short_prompt:
        (root / "judge_templates").mkdir(exist_ok=True)
        for name, text in SHORT_TEMPLATES.items():
            (root / "judge_templates" / name).write_text(text, encoding="utf-8")
    (root / "models" / "judged.sql").write_text(
        "{{ config(materialized='table') }}\n"
        "select id, {{ judge('instruction', '[chosen, rejected]') }} as j from {{ source('pairs') }} order by id\n",
        encoding="utf-8")
    return root
