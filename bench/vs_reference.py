"""prefclean vs the reference workflow (distilabel 1.5: LoadDataFromDicts -> UltraFeedback -> KeepColumns) and
Bespoke Curator (an `LLM` subclass over the same rows).

All judge the same N synthetic pairs against the same loopback fake judge (fixed latency) with the same
concurrency budget: distilabel's OpenAILLM sends a whole input batch at once, so input_batch_size=C means C
requests in flight; Curator gets `max_concurrent_requests=C` (its requests- and tokens-per-minute limits raised
so they never throttle); prefclean's judge gets concurrency C. Curator is sent the very prompt prefclean renders
for each pair (its `prompt()` returns those messages). Each side runs as a subprocess from a cold start
(imports included), then again as a rerun (its cache), then with 10% of the rows changed.

    python bench/vs_reference.py [--n 1000] [--latency-ms 100] [--concurrency 50] [--only curator,distilabel]

distilabel and Curator are installed by this script in virtual environments of their own, bench/.venv-distilabel
and bench/.venv-curator. Curator runs offline: telemetry off, litellm's bundled model prices and tokenizer.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from _common import REPO, FakeJudge, load_average, make_project, measure, prefclean, ratio, synthetic_pairs, table, \
    write_pairs

VENV = REPO / "bench" / ".venv-distilabel"
REQUIREMENTS = ["distilabel==1.5.*", "openai>=1.40,<2", "requests"]
CURATOR_VENV = REPO / "bench" / ".venv-curator"
CURATOR_REQUIREMENTS = ["bespokelabs-curator==0.1.31"]
CURATOR_ENV = {"TELEMETRY_ENABLED": "false", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_DATASETS_OFFLINE": "1",
               "HF_HUB_OFFLINE": "1", "CURATOR_VIEWER": "0"}

# The reference pipeline, written by this benchmark (run with the distilabel venv's python).
REFERENCE = '''
import json, random, sys
from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import KeepColumns, LoadDataFromDicts
from distilabel.steps.tasks import UltraFeedback

data_path, out_path, base_url, batch, cache_dir = sys.argv[1:6]
rows = []
for line in open(data_path, encoding="utf-8"):
    pair = json.loads(line)
    generations = [pair["chosen"], pair["rejected"]]
    random.Random(pair["id"]).shuffle(generations)  # a seeded coin per row, as prefclean's shuffle
    rows.append({"instruction": pair["question"], "generations": generations})

with Pipeline(name="bench-ultrafeedback", cache_dir=cache_dir) as pipeline:
    load = LoadDataFromDicts(data=rows, batch_size=int(batch))
    rate = UltraFeedback(
        llm=OpenAILLM(model="fake-judge", base_url=base_url, api_key="not-needed",
                      generation_kwargs={"max_new_tokens": 256, "temperature": 0.0}),
        aspect="overall-rating", input_batch_size=int(batch))
    keep = KeepColumns(columns=["instruction", "generations", "ratings", "rationales", "model_name"])
    load >> rate >> keep

if __name__ == "__main__":
    distiset = pipeline.run(use_cache=True)
    distiset["default"]["train"].to_parquet(out_path)
'''


# Curator's pipeline, written by this benchmark (run with the Curator venv's python). Its cache is keyed by the
# whole dataset (and the class's code), so any changed row sends every request again.
CURATOR = '''
import json, re, sys
from bespokelabs import curator

data_path, out_path, base_url, concurrency, cache_dir = sys.argv[1:6]
rows = [json.loads(line) for line in open(data_path, encoding="utf-8")]


class Judge(curator.LLM):
    def prompt(self, row):
        return row["messages"]  # the messages prefclean renders for this pair

    def parse(self, row, response):
        ratings = [int(r) for r in re.findall(r"^Rating: ([1-5])", response, re.M)]
        return {"instruction": row["instruction"], "ratings": ratings, "raw": response}


judge = Judge(model_name="fake-judge", backend="openai",
              generation_params={"temperature": 0.0, "max_tokens": 256},
              backend_params={"base_url": base_url, "api_key": "not-needed",
                              "max_concurrent_requests": int(concurrency),
                              "max_requests_per_minute": 100_000_000, "max_tokens_per_minute": 100_000_000_000})
result = judge(rows, working_dir=cache_dir)
getattr(result, "dataset", result).to_parquet(out_path)
'''


EXTRA_ARGS: list[str] = []


def ensure_venv(venv: Path = VENV, requirements: list[str] = REQUIREMENTS,
                check: str = "import distilabel.models, distilabel.pipeline, openai; "
                             "assert distilabel.__version__.startswith('1.5')") -> Path:
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0:
        return python
    print(f"installing {' '.join(requirements)} into {venv.relative_to(REPO)} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    return python


def ensure_curator() -> Path:
    return ensure_venv(CURATOR_VENV, CURATOR_REQUIREMENTS,
                       "import importlib.metadata as m; from bespokelabs import curator; "
                       "assert m.version('bespokelabs-curator') == '0.1.31'")


def write_inputs(work: Path, n: int, changed: int = 0):
    """The same pairs for both sides; `changed` rows get new question text (so they need new judgments)."""
    pairs = synthetic_pairs(n)
    if changed:
        new = synthetic_pairs(changed, variant="(edited) ")
        pairs = pa.concat_tables([new, pairs.slice(changed)])
    write_pairs(work / "pairs.parquet", pairs)
    with open(work / "pairs.jsonl", "w", encoding="utf-8") as f:
        for i, row in enumerate(pairs.to_pylist()):
            f.write(json.dumps({"id": i, **row}) + "\n")
    write_curator_inputs(work, pairs)
    return pairs


def write_curator_inputs(work: Path, pairs) -> None:
    """Each pair with the chat messages prefclean's judge renders for it (ultrafeedback, overall-rating; the
    generations in the order of the same seeded coin per row as distilabel's side)."""
    import random

    from prefclean.judge.tasks import make_task

    task = make_task("ultrafeedback", REPO)
    with open(work / "curator.jsonl", "w", encoding="utf-8") as f:
        for i, row in enumerate(pairs.to_pylist()):
            generations = [row["chosen"], row["rejected"]]
            random.Random(i).shuffle(generations)
            messages = task.prompt(row["question"], generations, "overall-rating", None).messages
            f.write(json.dumps({"id": i, "instruction": row["question"], "messages": messages}) + "\n")


def run_distilabel(python: Path, script: Path, work: Path, judge: FakeJudge, batch: int) -> dict:
    judge.reset(keep_latency=True)
    start = time.time()
    m = measure([str(python), str(script), str(work / "pairs.jsonl"), str(work / "distilabel.parquet"), judge.url,
                 str(batch), str(work / "distilabel-cache")], cwd=work)
    if m.returncode != 0:
        raise SystemExit(f"distilabel pipeline failed (exit {m.returncode}):\n{m.output[-4000:]}")
    return _row(m, judge.stats(), start)


def run_curator(python: Path, script: Path, work: Path, judge: FakeJudge, concurrency: int) -> dict:
    # tiktoken would download its cl100k_base file (Curator counts tokens for its rate limits): litellm ships it
    tokenizers = sorted(CURATOR_VENV.glob("lib/python*/site-packages/litellm/litellm_core_utils/tokenizers"))
    env = {**CURATOR_ENV, **({"TIKTOKEN_CACHE_DIR": str(tokenizers[0])} if tokenizers else {})}
    judge.reset(keep_latency=True)
    start = time.time()
    m = measure([str(python), str(script), str(work / "curator.jsonl"), str(work / "curator.parquet"), judge.url,
                 str(concurrency), str(work / "curator-cache")], cwd=work, env=env)
    if m.returncode != 0:
        raise SystemExit(f"Curator pipeline failed (exit {m.returncode}):\n{m.output[-4000:]}")
    return _row(m, judge.stats(), start)


def run_prefclean(root: Path, judge: FakeJudge, *args: str) -> dict:
    judge.reset(keep_latency=True)
    start = time.time()
    m = prefclean(root, *args, *EXTRA_ARGS)
    return _row(m, judge.stats(), start)


def _row(m, stats: dict, start: float) -> dict:
    first = stats["first_request_at"] - start if stats["first_request_at"] else None
    return {"seconds": m.seconds, "requests": stats["requests"], "max_in_flight": stats["max_in_flight"],
            "first_request_s": first, "peak_tree_mib": m.peak_tree_mib, "peak_proc_mib": m.peak_proc_mib}


def stale_rows(path: Path, pairs) -> int:
    """Output rows whose instruction is not in the current input: judgments of text that no longer exists."""
    out = pq.read_table(path, columns=["instruction"])["instruction"]
    return int(pc.sum(pc.invert(pc.is_in(out, value_set=pairs["question"]))).as_py() or 0)


def prefclean_stale(root: Path, pairs) -> int:
    out = pq.read_table(root / "target" / "exports" / "cleaned.parquet", columns=["prompt"])["prompt"]
    return int(pc.sum(pc.invert(pc.is_in(out, value_set=pairs["question"]))).as_py() or 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--changed", type=float, default=0.1, help="share of rows edited for the third run")
    parser.add_argument("--no-tests", action="store_true", help="build without prefclean's data tests")
    parser.add_argument("--only", default="distilabel,curator", help="which peers to run beside prefclean")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "vs_reference")
    args = parser.parse_args(argv)
    peers = [p for p in args.only.split(",") if p]
    unknown = set(peers) - {"distilabel", "curator"}
    if unknown:
        parser.error(f"--only: unknown peer {', '.join(sorted(unknown))} (distilabel, curator)")
    pythons = {"distilabel": ensure_venv() if "distilabel" in peers else None,
               "curator": ensure_curator() if "curator" in peers else None}
    EXTRA_ARGS[:] = ["--no-tests"] if args.no_tests else []
    versions = {}
    for name, package in (("distilabel", "distilabel"), ("curator", "bespokelabs-curator")):
        if pythons[name] is not None:
            versions[name] = subprocess.run([str(pythons[name]), "-c", "import importlib.metadata as m; "
                                             f"print(m.version('{package}'))"], capture_output=True, text=True).stdout.strip()
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    scripts = {"distilabel": work / "reference_pipeline.py", "curator": work / "curator_pipeline.py"}
    scripts["distilabel"].write_text(REFERENCE, encoding="utf-8")
    scripts["curator"].write_text(CURATOR, encoding="utf-8")
    n, c = args.n, args.concurrency
    changed = max(1, int(n * args.changed))
    load_before = load_average()
    results: dict[str, dict] = {}
    runners = {"distilabel": run_distilabel, "curator": run_curator}

    with FakeJudge(latency_ms=args.latency_ms) as judge:
        pairs = write_inputs(work, n)
        root = make_project(work / "project", work / "pairs.parquet", {"base_urls": [judge.url], "concurrency": c})
        for run in ("cold", "rerun"):
            for name in peers:
                results[f"{name} {run}"] = runners[name](pythons[name], scripts[name], work, judge, c)
            results[f"prefclean {run}"] = run_prefclean(root, judge)
        results["prefclean --full-refresh"] = run_prefclean(root, judge, "--full-refresh")
        pairs = write_inputs(work, n, changed)
        for name in peers:
            results[f"{name} changed"] = runners[name](pythons[name], scripts[name], work, judge, c)
            results[f"{name} changed"]["stale"] = stale_rows(work / f"{name}.parquet", pairs)
        results["prefclean changed"] = run_prefclean(root, judge)
        results["prefclean changed"]["stale"] = prefclean_stale(root, pairs)
    ideal = n / c * args.latency_ms / 1000
    budgets = [f"distilabel {versions[p]}: input_batch_size={c}" if p == "distilabel" else
               f"Curator {versions[p]}: max_concurrent_requests={c}" for p in peers]
    print(f"\n{n:,} pairs, fake judge latency {args.latency_ms:g} ms, concurrency budget {c} "
          f"({'; '.join(budgets + [f'prefclean: judge concurrency {c}'])}); "
          f"ideal judging time {ideal:.2f}s; load before: {load_before}, after: {load_average()}\n")
    rows = []
    for name, r in results.items():
        rows.append([name, r["seconds"], r["requests"], r["max_in_flight"],
                     "-" if r["first_request_s"] is None else f"{r['first_request_s']:.2f}",
                     r["peak_tree_mib"], r["peak_proc_mib"], r.get("stale", "-")])
    print(table(["run", "wall s", "requests", "max in flight", "1st request s", "peak RSS tree MiB",
                 "peak RSS 1 proc MiB", "stale rows"], rows))
    print()
    runs = [("cold", "cold"), ("rerun", "rerun"), (f"{changed} rows changed", "changed")]
    print(table(["run", *[f"{p} / prefclean wall" for p in peers],
                 *[f"{p} / prefclean peak RSS (tree)" for p in peers]],
                [[label, *[ratio(results[f"{p} {run}"]["seconds"], results[f"prefclean {run}"]["seconds"])
                           for p in peers],
                  *[ratio(results[f"{p} {run}"]["peak_tree_mib"], results[f"prefclean {run}"]["peak_tree_mib"])
                    for p in peers]] for label, run in runs]))
    mine = results["prefclean changed"]
    print(f"\nchanged rows: prefclean sent {mine['requests']} requests for {changed} edited pairs and exported "
          f"{mine['stale']} stale rows; " + "; ".join(
              f"{p} sent {results[f'{p} changed']['requests']} and returned {results[f'{p} changed']['stale']} rows "
              f"of text that is no longer in the input" for p in peers) + ".")
    cold = results["prefclean cold"]
    print(f"prefclean cold: {cold['seconds']:.2f} s, {cold['seconds'] - ideal:+.2f} s from the ideal judging time "
          f"of {ideal:.2f} s (target: within 0.5 s); its first request left at {cold['first_request_s']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
