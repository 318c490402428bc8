"""Prompt tokens llama.cpp evaluates per judgment of the smoke-test judge (its prefix cache reuses the rest), and
CPU and wall seconds per judgment, on the example's first N pairs judged in both orders (as the build does).

    python bench/smoke_prompt_tokens.py N [--compact] [--separate]
        --compact:  the smoke-test judge's own prompt and grammar (else the full UltraFeedback prompt)
        --separate: every pair in one order, then every pair swapped (the build before the two orders were
                    interleaved); else each pair is followed by its swapped order, as the build sends them

Counted by wrapping Llama.eval: every token it is handed is evaluated (the prompt's tokens past the prefix it
shares with the previous request, then one per generated token). Run from the repository root.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefclean.judge.engines import llamacpp  # noqa: E402
from prefclean.judge.engines.base import GenerationParams  # noqa: E402
from prefclean.judge.judges import smoke_test_judge  # noqa: E402
from prefclean.judge.tasks import make_task  # noqa: E402


def main() -> None:
    n, compact, separate = int(sys.argv[1]), "--compact" in sys.argv, "--separate" in sys.argv
    rows = [json.loads(line) for line in open("data/orca_sample.jsonl", encoding="utf-8")][:n]
    config = smoke_test_judge()
    engine = llamacpp.LlamaCppEngine(config)
    llama, evaluated = engine.loaded.llama, [0]
    evaluate = llama.eval

    def counting_eval(tokens):
        evaluated[0] += len(tokens)
        return evaluate(tokens)

    llama.eval = counting_eval
    task = make_task("ultrafeedback", Path.cwd(), compact)
    params = GenerationParams(max_tokens=config.max_tokens, temperature=0.0, seed=0)
    first = [(r["question"], [r["chosen"], r["rejected"]]) for r in rows]
    swapped = [(question, texts[::-1]) for question, texts in first]
    order = first + swapped if separate else [one for both in zip(first, swapped) for one in both]
    prompts = [task.prompt(question, texts, "overall-rating", None) for question, texts in order]
    prompt_tokens = completion_tokens = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for p in prompts:
        c = asyncio.run(engine.complete(p.messages, params, grammar=task.grammar(p.n)))
        prompt_tokens, completion_tokens = prompt_tokens + c.prompt_tokens, completion_tokens + c.completion_tokens
    wall, cpu, k = time.perf_counter() - wall, time.process_time() - cpu, len(prompts)
    print(f"{k} judgments ({'compact' if compact else 'full'} prompt, {'separate' if separate else 'interleaved'} "
          f"orders, {engine.path.name}): per judgment {prompt_tokens / k:.0f} prompt tokens, "
          f"{(evaluated[0] - completion_tokens) / k:.0f} of them evaluated, {completion_tokens / k:.0f} completion tokens; "
          f"{cpu / k:.2f} CPU-s, {wall / k:.2f} s wall; {engine.n_threads} thread(s); load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
