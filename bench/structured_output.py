"""Unparseable answers with and without structured output, on a real server: llama-cpp-python's OpenAI-compatible
server (tests/servers/llama_server.py) with the SmolLM2-135M GGUF, sampling freely (no GBNF sent).

Each configuration judges the same N pairs once through `prefclean build` (the built-in ultrafeedback prompt,
temperature 0, no retries of either kind), and counts rows whose answer could not be read, with the mean
completion tokens per request. llama-cpp-python's server refuses `response_format: {"type": "json_schema"}`
(422: its request type allows only text and json_object), so the structured runs use `structured_output:
json_object`, which sends the same schema as `{"type": "json_object", "schema": ...}`; it turns the schema into
a grammar, as llama.cpp's C++ server, vLLM and SGLang do for json_schema.

    python bench/structured_output.py [--pairs 20] [--max-tokens 160]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from servers.llama_server import LlamaServer, write_judge_project  # noqa: E402

SUBJECTS = ["2 + 2", "the capital of France", "a primary colour", "the boiling point of water at sea level",
            "the largest planet", "the author of Hamlet", "10 times 3", "the chemical symbol for gold",
            "the speed of light", "the longest river in Africa"]
CONFIGS = [
    ("free text, rationale full", []),
    ("free text, rationale none", ["rationale: none"]),
    ("structured, rationale full", ["structured_output: json_object"]),
    ("structured, rationale short", ["structured_output: json_object", "rationale: short"]),
    ("structured, rationale none", ["structured_output: json_object", "rationale: none"]),
]


def pairs(n: int) -> list[dict]:
    out = []
    for i in range(n):
        subject = SUBJECTS[i % len(SUBJECTS)]
        out.append({"instruction": f"What is {subject}? (question {i})",
                    "chosen": f"A short, correct answer about {subject}.",
                    "rejected": f"I do not know anything about {subject}, sorry."})
    return out


def run(server: LlamaServer, root: Path, extra: list[str], n: int, max_tokens: int) -> dict:
    lines = ["engine: openai", f"base_url: {server.url}", "model: smollm2", f"max_tokens: {max_tokens}",
             "temperature: 0", "max_retries: 0", "parse_retries: 0", "concurrency: 1", "timeout: 300", *extra]
    write_judge_project(root, lines, pairs(n))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "prefclean.cli", "build", "--project-dir", str(root)], env=env,
                          capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    with duckdb.connect(str(root / "target" / "tiny.duckdb"), read_only=True) as con:
        rows = con.sql("select j.error, j.completion_tokens from judged").fetchall()
    unparsed = sum(1 for error, _ in rows if error is not None)
    tokens = [t for _, t in rows if t is not None]
    return {"rows": len(rows), "unparseable": unparsed, "exit": done.returncode,
            "completion_tokens": round(sum(tokens) / len(tokens), 1) if tokens else None,
            "seconds": round(seconds, 1), "errors": sorted({e[:70] for e, _ in rows if e})[:3]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--only", default=None, help="comma-separated configuration numbers (1-5) to run")
    args = parser.parse_args()
    chosen = [CONFIGS[int(i) - 1] for i in args.only.split(",")] if args.only else CONFIGS
    from prefclean.judge.engines.llamacpp import default_gguf

    results = {}
    with tempfile.TemporaryDirectory() as tmp, LlamaServer(default_gguf(), n_ctx=2048) as server:
        for i, (name, extra) in enumerate(chosen):
            results[name] = run(server, Path(tmp) / f"p{i}", extra, args.pairs, args.max_tokens)
            print(json.dumps({name: results[name]}), flush=True)
    print(f"\n| configuration ({args.pairs} judgments each, max_tokens {args.max_tokens}) | unparseable | "
          "completion tokens / request | build s |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['unparseable']}/{r['rows']} ({100 * r['unparseable'] / max(r['rows'], 1):.0f}%) | "
              f"{r['completion_tokens']} | {r['seconds']} |")


if __name__ == "__main__":
    main()
