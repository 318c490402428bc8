"""A million pairs on one machine: staging, shuffle, judging, cleaning and Parquet export, stage by stage.

The judge is one or more zero-latency fake judge servers (replicas listed in `base_urls`), so what is
measured is prefclean's own overhead per row; on a small machine the fake servers share its cores.

    python bench/million.py [--n 1000000] [--replicas 2] [--concurrency 64] [--no-rerun] [--full-refresh]
    python bench/million.py --reuse --full-refresh     # the last run's project and cache: only the full refresh

`--full-refresh` adds a `prefclean build --full-refresh --no-tests` after the other builds: every model rebuilt,
every judgment from the cache (issue 16 §2). `--reuse` keeps the work folder's pairs, project and judgment cache
(e.g. from a run with another prefclean) and runs only that build, against fresh fake judges. `--judging-only`
adds the same build of judged_pairs alone (`--select judged_pairs`): its CPU is the judging stage's and start-up's.

Peak memory is that of the `prefclean build` process tree (the fake judges are not its children).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import yaml
from _common import REPO, FakeJudge, load_average, make_project, prefclean, synthetic_pairs, table, write_pairs

STAGES = {  # model -> stage of the pipeline
    "stg_pairs": "staging", "shuffled_pairs": "shuffle", "judged_pairs": "judging",
    "pair_ratings": "cleaning", "pair_decisions": "cleaning", "cleaned_pairs": "cleaning",
}
MODEL_LINE = re.compile(r"^\d+ of \d+ OK \S+ (\S+) \.\.\. (\d+) rows in ([\d.]+)s", re.M)
SOURCE_LINE = re.compile(r"^source \S+ (?:staged|up to date): \d+ rows in ([\d.]+)s", re.M)
EXPORT_LINE = re.compile(r"^export \S+ OK: (\d+) rows .* in ([\d.]+)s", re.M)


def stage_times(output: str, wall: float) -> dict[str, float]:
    times = {"staging": 0.0, "shuffle": 0.0, "judging": 0.0, "cleaning": 0.0, "export": 0.0}
    for seconds in SOURCE_LINE.findall(output):
        times["staging"] += float(seconds)
    for model, _rows, seconds in MODEL_LINE.findall(output):
        times[STAGES.get(model, "cleaning")] += float(seconds)
    for _rows, seconds in EXPORT_LINE.findall(output):
        times["export"] += float(seconds)
    times["other (start-up, data tests, summary)"] = max(0.0, wall - sum(times.values()))
    return times


class Timeline:
    """The judges' request counts every `every` seconds while a build runs: the rate of each tenth of the cold
    judging, so whether judging slows as the warehouse and the judgment cache fill shows within one run, at one
    machine's load, rather than only between runs at two sizes (issue 16 §6)."""

    def __init__(self, judges, every: float = 2.0):
        self.judges, self.every = judges, every
        self.samples: list[tuple[float, int, str]] = []  # (seconds since start, requests so far, 1-min load)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.wait(self.every):
            try:
                requests = sum(j.stats()["requests"] for j in self.judges)
            except OSError:
                continue
            self.samples.append((time.perf_counter() - self._start, requests, load_average().split()[0]))

    def tenths(self, total: int) -> list[list]:
        """[tenth, requests/s, µs per request, load (1 min) at its end] for each tenth of `total` requests."""
        rows, previous = [], None
        for tenth in range(1, 11):
            goal = total * tenth / 10
            at = next((s for s in self.samples if s[1] >= goal), None)
            if at is None:
                break
            if previous is not None and at[0] > previous[0]:
                rate = (at[1] - previous[1]) / (at[0] - previous[0])
                rows.append([f"{tenth - 1}0-{tenth}0%", f"{rate:,.0f}", f"{1e6 / rate:,.0f}", at[2]])
            previous = at
        return rows


def run(n: int, replicas: int, concurrency: int, work: Path, *, rerun: bool, tests: bool,
        bias_check: bool, full_refresh: bool = False, reuse: bool = False, judging_only: bool = False) -> list[dict]:
    source = work / "pairs.parquet"
    if not reuse:
        shutil.rmtree(work, ignore_errors=True)
        start = time.perf_counter()
        write_pairs(source, synthetic_pairs(n))
        generated = time.perf_counter() - start
        print(f"generated {n:,} pairs ({source.stat().st_size / 2**20:.0f} MiB Parquet) in {generated:.1f}s",
              flush=True)
    runs = []
    with contextlib.ExitStack() as stack:
        judges = [stack.enter_context(FakeJudge()) for _ in range(replicas)]
        judge = {"base_urls": [j.url for j in judges], "concurrency": concurrency}
        if reuse:  # the same project and cache, the new judges' addresses (not part of any key)
            root = (work / "project").resolve()
            config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
            config["judges"]["default"].update(judge)
            (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        else:
            root = make_project(work / "project", source, judge, bias_check=bias_check)
        args = [] if tests else ["--no-tests"]
        labels = [] if reuse else ["cold", "rerun"][: 2 if rerun else 1]
        refreshes = {"full refresh": ["--full-refresh", "--no-tests"],
                     "judged_pairs only": ["--full-refresh", "--no-tests", "--select", "judged_pairs"]}
        for label in labels + (["full refresh"] if full_refresh else []) + (["judged_pairs only"] if judging_only else []):
            load = load_average()
            with Timeline(judges) as timeline:
                m = prefclean(root, *refreshes.get(label, args))
            requests = sum(j.stats()["requests"] for j in judges)
            for j in judges:
                j.reset()
            times = stage_times(m.output, m.seconds)
            if label == "cold":
                print(table(["cold judging, tenth of the requests", "requests/s", "µs per request", "load at its end"],
                            timeline.tenths(requests)), flush=True)
            runs.append({"label": label, "wall": m.seconds, "cpu": m.cpu_seconds, "times": times, "requests": requests,
                         "peak_tree_mib": m.peak_tree_mib, "peak_proc_mib": m.peak_proc_mib, "load": load,
                         "rows": dict((model, int(rows)) for model, rows, _ in MODEL_LINE.findall(m.output))})
            print(f"{label}: {m.seconds:.1f}s ({m.cpu_seconds:.1f} CPU-s), {requests:,} requests, peak RSS "
                  f"{m.peak_tree_mib:.0f} MiB (load before {load}, after {load_average()})", flush=True)
        cache = root / "target" / "judgments.duckdb"
        runs[0]["cache_mib"] = cache.stat().st_size / 2**20 if cache.exists() else 0
    return runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--replicas", type=int, default=2, help="fake judge server processes")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight per replica")
    parser.add_argument("--no-rerun", action="store_true", help="skip the second (incremental) build")
    parser.add_argument("--no-tests", action="store_true", help="build without the data tests")
    parser.add_argument("--bias-check", action="store_true",
                        help="judge every pair twice (check_position_bias: true): 2 requests per pair")
    parser.add_argument("--full-refresh", action="store_true",
                        help="then a --full-refresh --no-tests build (every judgment from the cache)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the work folder's project and cache; run only the --full-refresh build")
    parser.add_argument("--judging-only", action="store_true",
                        help="then a --full-refresh of judged_pairs alone (--select judged_pairs)")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "million")
    args = parser.parse_args(argv)
    runs = run(args.n, args.replicas, args.concurrency, args.work, rerun=not args.no_rerun,
               tests=not args.no_tests, bias_check=args.bias_check, full_refresh=args.full_refresh or args.reuse,
               reuse=args.reuse, judging_only=args.judging_only)
    cold = runs[0]
    print(f"\n{args.n:,} pairs; {args.replicas} zero-latency fake judge replica(s), concurrency {args.concurrency} "
          f"each; position-bias check {'on' if args.bias_check else 'off'}; data tests "
          f"{'off' if args.no_tests else 'on'}; load after: {load_average()}\n")
    stages = list(cold["times"])
    rows = [[stage] + [f"{r['times'][stage]:.2f}" for r in runs] for stage in stages]
    rows.append(["total wall"] + [f"{r['wall']:.2f}" for r in runs])
    rows.append(["total CPU (build process)"] + [f"{r['cpu']:.2f}" for r in runs])
    print(table(["stage (s)"] + [r["label"] for r in runs], rows))
    judging = cold["times"]["judging"]
    print()
    print(table(["measure", "value"], [
        ["judge requests (cold)", cold["requests"]],
        ["judged rows/s (judging stage)", f"{args.n / judging:,.0f}" if judging else "-"],
        ["rows/s end to end (cold)", f"{args.n / cold['wall']:,.0f}"],
        ["peak RSS, build process tree (MiB)", " / ".join(f"{r['peak_tree_mib']:.0f}" for r in runs)],
        ["judgment cache file (MiB)", f"{cold['cache_mib']:.0f}"],
        ["rows kept (cleaned_pairs)", cold["rows"].get("cleaned_pairs", "-")],
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
