"""Where a cold `prefclean build` spends its time: a phase-by-phase timeline (wall and CPU) of the build
bench/vs_reference.py times cold (1,000 pairs, fake judge at 100 ms, concurrency 50: ideal judging 2.0 s).

Why: the cold build's target is the physical limit (within 0.5 s of the ideal judging time, issue 16 §5), and
what is left above it is start-up (imports, opening DuckDB, compiling, the models before the judge), the judging
itself (the client's CPU per request on the critical path), and what runs after the last answer. One number per
build cannot say which; here each build is a fresh process (as the CLI is) that runs `prefclean build` through
`prefclean.cli.main` with timestamps and the process's CPU time (every thread) taken at each phase's end. The
fake judge says when the first and last requests arrived. A fresh project per build: no warehouse, no judgment
cache (the per-user compiled-template cache stays, as for any user's second project).

    python bench/cold_build.py [--n 1000] [--latency-ms 100] [--concurrency 50] [--runs 5]

The timestamps are taken by wrapping a few of the build's functions inside the child process (this script's
`--child` mode); nothing in prefclean is changed for it.
"""

from __future__ import annotations

import time

_T0_WALL, _T0_CPU = time.time(), time.process_time()  # the child's first statement (imports come after)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

BENCH = Path(__file__).resolve().parent


def child(root: str, out: str) -> int:
    """One build, as `prefclean build --project-dir root` runs it, writing its marks to `out` (JSON)."""
    marks = [("python started", _T0_WALL, _T0_CPU)]

    def mark(name: str) -> None:
        marks.append((name, time.time(), time.process_time()))

    from prefclean import cli  # what `python -m prefclean.cli` imports first

    mark("import prefclean.cli")
    from prefclean import api, runner, summary  # noqa: F401  (what the build command imports next)

    export = sys.modules["prefclean.export"]  # (the name prefclean.export is the api function)

    mark("api, runner imported")

    def timed(owner, name: str, before: str | None, after: str):
        fn = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if before:
                mark(before)
            try:
                return fn(*args, **kwargs)
            finally:
                mark(after)

        setattr(owner, name, wrapper)

    def model_named(args) -> str:
        return args[2].name  # materialize(con, compiler, model, ...)

    materialize = runner.materialize

    def timed_materialize(*args, **kwargs):
        mark(f"start {model_named(args)}")
        try:
            return materialize(*args, **kwargs)
        finally:
            mark(f"built {model_named(args)}")

    runner.materialize = timed_materialize
    timed(runner.Build, "__init__", "Build start", "Build.__init__ done")
    timed(runner, "stage_sources", None, "sources staged")
    timed(runner, "record_run", "models and their tests done", "run recorded")
    timed(summary, "compute_summary", None, "summary computed")
    timed(summary, "write_summary", None, "summary written")
    timed(export, "run_exports", None, "exports done")
    timed(runner.Build, "close", "closing", "closed")
    import atexit

    atexit.register(lambda: Path(out).write_text(json.dumps(marks), encoding="utf-8"))
    sys.argv = ["prefclean", "build", "--project-dir", root]
    cli.main()  # as the console script calls it (it exits the process)
    return 0


def one_build(work: Path, pairs: Path, judge, concurrency: int, run: int) -> list[tuple[str, float, float]]:
    from _common import make_project

    root = make_project(work / f"project{run}", pairs, {"base_urls": [judge.url], "concurrency": concurrency})
    out = work / f"marks{run}.json"
    judge.reset(keep_latency=True)
    start = time.time()
    result = subprocess.run([sys.executable, __file__, "--child", str(root), str(out)], capture_output=True,
                            text=True, env={**os.environ, "PREFCLEAN_PROGRESS": "0"})
    end = time.time()
    if result.returncode != 0:
        raise SystemExit(f"build failed (exit {result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    stats = judge.stats()
    marks = [(name, wall - start, cpu) for name, wall, cpu in json.loads(out.read_text(encoding="utf-8"))]
    marks.append(("first request arrived", stats["first_request_at"] - start, None))
    marks.append(("last request arrived", stats["last_request_at"] - start, None))
    marks.append(("process ended", end - start, None))
    shutil.rmtree(root, ignore_errors=True)
    return sorted(marks, key=lambda m: m[1]), stats


PHASES = [  # (label, from mark, to mark)
    ("interpreter + `import prefclean.cli`", None, "import prefclean.cli"),
    ("api, runner imports", "import prefclean.cli", "api, runner imported"),
    ("CLI + project loaded", "api, runner imported", "Build start"),
    ("`Build.__init__` (DuckDB open, compile, warm-up start)", "Build start", "Build.__init__ done"),
    ("UDFs registered, sources staged", "Build.__init__ done", "sources staged"),
    ("models before the judge (+ their tests)", "sources staged", "start judged_pairs"),
    ("judged_pairs start to first request", "start judged_pairs", "first request arrived"),
    ("first request to last request", "first request arrived", "last request arrived"),
    ("last request to judged_pairs built", "last request arrived", "built judged_pairs"),
    ("models after the judge (+ all tests)", "built judged_pairs", "models and their tests done"),
    ("run recorded", "models and their tests done", "run recorded"),
    ("summary", "run recorded", "summary written"),
    ("exports", "summary written", "exports done"),
    ("close", "closing", "closed"),
    ("exit", "closed", "process ended"),
]


def phase_rows(runs: list[list[tuple[str, float, float]]]) -> list[list]:
    rows = []
    for label, start, end in PHASES:
        walls, cpus = [], []
        for marks in runs:
            at = {name: (wall, cpu) for name, wall, cpu in marks}
            if (start is not None and start not in at) or end not in at:
                continue
            s_wall, s_cpu = at[start] if start else (0.0, 0.0)
            e_wall, e_cpu = at[end]
            walls.append(e_wall - s_wall)
            if e_cpu is not None and s_cpu is not None:
                cpus.append(e_cpu - s_cpu)
        rows.append([label, f"{statistics.median(walls):.3f}" if walls else "-",
                     f"{min(walls):.3f}-{max(walls):.3f}" if walls else "-",
                     f"{statistics.median(cpus):.3f}" if cpus else "-"])
    return rows


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--child"]:
        return child(*sys.argv[2:4])
    sys.path.insert(0, str(BENCH))
    from _common import REPO, FakeJudge, load_average, synthetic_pairs, table, write_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "cold_build")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    pairs = write_pairs(work / "pairs.parquet", synthetic_pairs(args.n))
    ideal = args.n / args.concurrency * args.latency_ms / 1000
    load_before = load_average()
    runs, totals, firsts = [], [], []
    with FakeJudge(latency_ms=args.latency_ms) as judge:
        for run in range(args.runs):
            marks, stats = one_build(work, pairs, judge, args.concurrency, run)
            if stats["requests"] != args.n:
                raise SystemExit(f"run {run}: {stats['requests']} requests for {args.n} pairs")
            runs.append(marks)
            at = {name: wall for name, wall, _ in marks}
            totals.append(at["process ended"])
            firsts.append(at["first request arrived"])
            print(f"run {run}: {at['process ended']:.2f} s, first request at {at['first request arrived']:.2f} s, "
                  f"max in flight {stats['max_in_flight']}", flush=True)
    print(f"\n{args.n:,} pairs, fake judge latency {args.latency_ms:g} ms, concurrency {args.concurrency}, "
          f"{args.runs} cold builds; ideal judging {ideal:.2f} s; load before: {load_before}, after: {load_average()}\n")
    print(table(["phase (cold build)", "wall s (median)", "wall s (range)", "CPU s (median, every thread)"],
                phase_rows(runs)))
    total = statistics.median(totals)
    print(f"\ncold build: median {total:.2f} s ({min(totals):.2f}-{max(totals):.2f}), {total - ideal:+.2f} s from "
          f"the ideal {ideal:.2f} s (target: within 0.5 s); first request at {statistics.median(firsts):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
