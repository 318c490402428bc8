"""Judging throughput of the embedded llama.cpp engine on the example project's pairs.

Two measurements:
  engine  every pair judged once (chosen, rejected order), through the same Dispatcher, task and grammar
          that the judge UDF uses, without DuckDB or the cache: the engine's own speed.
  build   `prefclean build` of a fresh copy of the example project (the README's main command): every pair
          judged twice (the position-bias check), plus staging, models, tests and the run summary.

    python bench/judge_throughput_embedded.py [--mode engine|build|both] [--model PATH.gguf] [--n-threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._common import load_average, measure  # noqa: E402
from prefclean.judge.dispatch import Dispatcher, LoopThread, Request, Stats  # noqa: E402
from prefclean.judge.engines import create_engine  # noqa: E402
from prefclean.judge.judges import smoke_test_judge  # noqa: E402
from prefclean.judge.tasks import make_task  # noqa: E402


def load_pairs(limit: int | None) -> list[dict]:
    with open(REPO / "data" / "orca_sample.jsonl", encoding="utf-8") as f:
        pairs = [json.loads(line) for line in f if line.strip()]
    return pairs[:limit] if limit else pairs


def _cpu_seconds() -> float:
    """CPU time of this process, llama.cpp's threads included: on a shared machine, less noisy than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_engine(args) -> dict:
    options = {k: v for k, v in (("n_threads", args.n_threads), ("n_ctx", args.n_ctx)) if v}
    config = replace(smoke_test_judge(), model=args.model, max_tokens=args.max_tokens, options=options)
    started = time.perf_counter()
    engine = create_engine(config)  # loads the model, outside the timed part
    load_s = time.perf_counter() - started
    task = make_task("ultrafeedback", REPO)
    stats = Stats()
    dispatcher = Dispatcher(config, engine, task, stats)
    loop = LoopThread.get()
    requests = []
    for i, pair in enumerate(load_pairs(args.pairs)):
        prompt = task.prompt(pair["question"], [pair["chosen"], pair["rejected"]], "overall-rating", None)
        requests.append(Request(str(i), prompt.messages, prompt.n, task.grammar(prompt.n)))
    started, cpu_before = time.perf_counter(), _cpu_seconds()
    outcomes = [loop.run(dispatcher.judge_one(r)) for r in requests]
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    counts = stats.as_dict()
    return {"engine": engine.describe(), "pairs": len(requests), "parsed": sum(o.ok for o in outcomes),
            "load_s": load_s, "seconds": seconds, "cpu_s_per_pair": cpu / len(requests), "pairs_per_s": len(requests) / seconds,
            "prompt_tokens": counts["prompt_tokens"], "completion_tokens": counts["completion_tokens"],
            "prompt_tok_per_s": counts["prompt_tokens"] / seconds,
            "completion_tok_per_s": counts["completion_tokens"] / seconds,
            "mean_latency_ms": 1000 * counts["request_seconds"] / max(1, counts["requests"])}


# `prefclean build` with llama.cpp's evaluations counted: every token Llama.eval is handed is evaluated (the prompt
# past the prefix it shares with the previous request, then one per generated token); CPU seconds at exit.
BUILD_DRIVER = """
import atexit, os, sys
import llama_cpp
evaluated = [0]
evaluate = llama_cpp.Llama.eval
def counting(self, tokens):
    evaluated[0] += len(tokens)
    return evaluate(self, tokens)
llama_cpp.Llama.eval = counting
def report():
    t = os.times()
    print(f"BENCH evaluated {evaluated[0]} cpu {t.user + t.system:.1f}", flush=True)
atexit.register(report)
from prefclean.cli import main
main(sys.argv[1:], prog_name="prefclean")
"""


def bench_build() -> dict:
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "example"
        root.mkdir()
        for name in ("prefclean.yml",):
            shutil.copy(REPO / name, root / name)
        for folder in ("data", "models", "macros", "udfs", "data_tests"):
            if (REPO / folder).is_dir():
                shutil.copytree(REPO / folder, root / folder)
        run = measure([sys.executable, "-c", BUILD_DRIVER, "build", "--project-dir", str(root)], cwd=root,
                      env={"PREFCLEAN_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)})
    if run.returncode != 0:
        raise SystemExit(f"prefclean build failed ({run.returncode}):\n{run.output[-3000:]}")
    judged = [tuple(map(int, m)) for m in re.findall(r"judged (\d+), failed (\d+).*?tokens (\d+)\+(\d+)", run.output)]
    totals = [sum(col) for col in zip(*judged)] if judged else [0, 0, 0, 0]
    evaluated, cpu = re.search(r"BENCH evaluated (\d+) cpu ([\d.]+)", run.output).groups()
    return {"seconds": run.seconds, "peak_mib": run.peak_tree_mib, "judgments": totals[0], "failed": totals[1],
            "prompt_tokens": totals[2], "completion_tokens": totals[3], "evaluated": int(evaluated),
            "cpu_s": float(cpu), "load": f"{load_before} -> {load_average()}",
            "smoke_warning": "smoke-test judge" in run.output}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["engine", "build", "both"], default="both")
    parser.add_argument("--model", default=None, help="a GGUF path (default: the smoke-test SmolLM2-135M)")
    parser.add_argument("--pairs", type=int, default=None, help="judge only the first N pairs")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--n-ctx", type=int, default=None)
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load average {load_average()}")
    if args.mode in ("engine", "both"):
        r = bench_engine(args)
        print(f"engine: {r['engine']}; model load {r['load_s']:.2f}s")
        print(f"  {r['pairs']} pairs in {r['seconds']:.1f}s = {r['pairs_per_s']:.2f} pairs/s "
              f"({r['parsed']}/{r['pairs']} parsed), mean latency {r['mean_latency_ms']:.0f} ms, "
              f"{r['cpu_s_per_pair']:.2f} CPU-s per pair")
        print(f"  tokens: prompt {r['prompt_tokens']} = {r['prompt_tok_per_s']:.0f}/s, "
              f"completion {r['completion_tokens']} = {r['completion_tok_per_s']:.1f}/s")
    if args.mode in ("build", "both"):
        r = bench_build()
        k = max(1, r["judgments"])
        print(f"build: prefclean build of the example project in {r['seconds']:.1f}s, {r['cpu_s']:.1f} CPU-s "
              f"(peak RSS {r['peak_mib']:.0f} MiB; load {r['load']}), "
              f"{r['judgments']} judgments ({r['failed']} failed) = {r['judgments'] / r['seconds']:.2f} judgments/s, "
              f"tokens {r['prompt_tokens']}+{r['completion_tokens']}; per judgment {r['prompt_tokens'] / k:.0f} prompt "
              f"tokens, {(r['evaluated'] - r['completion_tokens']) / k:.0f} of them evaluated, "
              f"{r['completion_tokens'] / k:.0f} generated, {r['cpu_s'] / k:.2f} CPU-s (the whole build's CPU / judgments); "
              f"smoke-test warning shown: {r['smoke_warning']}")


if __name__ == "__main__":
    main()
