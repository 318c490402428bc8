"""prefclean vs the reference workflow (distilabel 1.5: LoadDataFromDicts -> UltraFeedback -> KeepColumns).

Both judge the same N synthetic pairs against the same loopback fake judge (fixed latency) with the same
concurrency budget: distilabel's OpenAILLM sends a whole input batch at once, so input_batch_size=C means C
requests in flight; prefclean's judge gets concurrency C. Each side runs as a subprocess from a cold start
(imports included), then again as a rerun (its cache), then with 10% of the rows changed.

    python bench/vs_reference.py [--n 1000] [--latency-ms 100] [--concurrency 50]

distilabel is installed by this script in its own virtual environment, bench/.venv-distilabel.
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


EXTRA_ARGS: list[str] = []


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    check = [str(python), "-c", "import distilabel.models, distilabel.pipeline, openai; assert distilabel.__version__.startswith('1.5')"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"installing {' '.join(REQUIREMENTS)} into {VENV.relative_to(REPO)} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    return python


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
    return pairs


def run_distilabel(python: Path, script: Path, work: Path, judge: FakeJudge, batch: int) -> dict:
    judge.reset(keep_latency=True)
    start = time.time()
    m = measure([str(python), str(script), str(work / "pairs.jsonl"), str(work / "distilabel.parquet"), judge.url,
                 str(batch), str(work / "distilabel-cache")], cwd=work)
    if m.returncode != 0:
        raise SystemExit(f"distilabel pipeline failed (exit {m.returncode}):\n{m.output[-4000:]}")
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
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "vs_reference")
    args = parser.parse_args(argv)
    python = ensure_venv()
    EXTRA_ARGS[:] = ["--no-tests"] if args.no_tests else []
    version = subprocess.run([str(python), "-c", "import distilabel; print(distilabel.__version__)"],
                             capture_output=True, text=True).stdout.strip()
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    script = work / "reference_pipeline.py"
    script.write_text(REFERENCE, encoding="utf-8")
    n, c = args.n, args.concurrency
    changed = max(1, int(n * args.changed))
    load_before = load_average()
    results: dict[str, dict] = {}
    with FakeJudge(latency_ms=args.latency_ms) as judge:
        pairs = write_inputs(work, n)
        root = make_project(work / "project", work / "pairs.parquet", {"base_urls": [judge.url], "concurrency": c})
        results["distilabel cold"] = run_distilabel(python, script, work, judge, c)
        results["prefclean cold"] = run_prefclean(root, judge)
        results["distilabel rerun"] = run_distilabel(python, script, work, judge, c)
        results["prefclean rerun"] = run_prefclean(root, judge)
        results["prefclean --full-refresh"] = run_prefclean(root, judge, "--full-refresh")
        pairs = write_inputs(work, n, changed)
        results["distilabel changed"] = run_distilabel(python, script, work, judge, c)
        results["distilabel changed"]["stale"] = stale_rows(work / "distilabel.parquet", pairs)
        results["prefclean changed"] = run_prefclean(root, judge)
        results["prefclean changed"]["stale"] = prefclean_stale(root, pairs)
    ideal = n / c * args.latency_ms / 1000
    print(f"\n{n:,} pairs, fake judge latency {args.latency_ms:g} ms, concurrency budget {c} "
          f"(distilabel {version}: input_batch_size={c}; prefclean: judge concurrency {c}); "
          f"ideal judging time {ideal:.2f}s; load before: {load_before}, after: {load_average()}\n")
    rows = []
    for name, r in results.items():
        rows.append([name, r["seconds"], r["requests"], r["max_in_flight"],
                     "-" if r["first_request_s"] is None else f"{r['first_request_s']:.2f}",
                     r["peak_tree_mib"], r["peak_proc_mib"], r.get("stale", "-")])
    print(table(["run", "wall s", "requests", "max in flight", "1st request s", "peak RSS tree MiB",
                 "peak RSS 1 proc MiB", "stale rows"], rows))
    print()
    pairs_of = [("cold", "distilabel cold", "prefclean cold"), ("rerun", "distilabel rerun", "prefclean rerun"),
                (f"{changed} rows changed", "distilabel changed", "prefclean changed")]
    print(table(["run", "distilabel / prefclean wall", "distilabel / prefclean peak RSS (tree)"],
                [[label, ratio(results[d]["seconds"], results[p]["seconds"]),
                  ratio(results[d]["peak_tree_mib"], results[p]["peak_tree_mib"])] for label, d, p in pairs_of]))
    d, p = results["prefclean changed"], results["distilabel changed"]
    print(f"\nchanged rows: prefclean sent {d['requests']} requests for {changed} edited pairs and exported "
          f"{d['stale']} stale rows; distilabel sent {p['requests']} and returned {p['stale']} rows of text that "
          f"is no longer in the input.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
