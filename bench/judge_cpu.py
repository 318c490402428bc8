"""The client's CPU per judge request, measured in one process with time.process_time (every thread).

Why: with a fast server the judge's own Python (rendering, the request body, aiohttp, parsing the answer, the
judgment's row, the cache row, progress) is what limits throughput, and a number that moves by 10 µs is lost in
the noise of whole-build subprocess timings on a shared machine. Here one process builds fresh copies of the
example project against a zero-latency fake judge: a cold build (every row a request), then the same project
with `--full-refresh` (every row rendered, keyed and answered by the judgment cache, nothing sent). The
difference over the requests is what sending and receiving one costs. The first round (imports, first-time
template compiles) is not counted; the median of the others is reported.

That difference moves when the cached rebuild gets cheaper or dearer, with the sending path unchanged (a fully
cached batch answered as Arrow columns made the rebuild cheaper, and the difference larger). So the request path
is also measured directly, with nothing subtracted: the cold build's own CPU per request, the CPU of the DuckDB
threads inside the judge UDF (time.thread_time around each `Judging.judge_batch` call: keying, look-up, rendering,
handing requests over, the result rows) and the judge's event-loop thread (aiohttp, parsing, the cache rows).

    python bench/judge_cpu.py [--n 4000] [--rounds 4] [--concurrency 32]

Profile the same path:  py-spy record --native -r 400 -o /tmp/prof.svg -- python bench/judge_cpu.py --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _common import REPO, FakeJudge, load_average, make_project, synthetic_pairs, table, write_pairs


def loop_cpu() -> float:
    """CPU seconds the judge's event-loop thread has used (it lives as long as the process)."""
    from prefclean.judge.dispatch import LoopThread

    async def thread_time() -> float:
        return time.thread_time()

    return LoopThread.get().run(thread_time())


UDF_CPU = [0.0]  # CPU seconds DuckDB's threads have spent inside the judge UDF's batches


def time_udf_batches() -> None:
    """Count the CPU each judge UDF call uses on its own thread (DuckDB calls it from several)."""
    import threading

    from prefclean.judge.udf import Judging

    judge_batch, lock = Judging.judge_batch, threading.Lock()

    def timed(self, *args, **kwargs):
        start = time.thread_time()
        try:
            return judge_batch(self, *args, **kwargs)
        finally:
            spent = time.thread_time() - start
            with lock:
                UDF_CPU[0] += spent

    Judging.judge_batch = timed


def timed_build(root, **options) -> tuple[float, float, float, float, dict]:
    """(CPU s, wall s, the judge loop's CPU s, the UDF calls' CPU s, the judging counters) of one in-process build."""
    import prefclean
    from prefclean.events import quiet

    loop, udf, cpu, wall = loop_cpu(), UDF_CPU[0], time.process_time(), time.perf_counter()
    result = prefclean.build(str(root), tests=False, exports=False, reporter=quiet, **options)
    cpu, wall, loop = time.process_time() - cpu, time.perf_counter() - wall, loop_cpu() - loop
    if not result.ok:
        raise SystemExit(f"build failed: {result!r}")
    return cpu, wall, loop, UDF_CPU[0] - udf, result.judging.as_dict()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=4, help="cold + warm pairs; the first is not counted")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--work", default=str(REPO / "bench" / "out" / "judge_cpu"))
    args = parser.parse_args(argv)
    from pathlib import Path

    work = Path(args.work)
    pairs = write_pairs(work / "pairs.parquet", synthetic_pairs(args.n))
    load_before = load_average()
    rows = []
    time_udf_batches()
    with FakeJudge(latency_ms=0) as judge:
        for i in range(args.rounds):
            root = make_project(work / f"round{i}", pairs, {"base_urls": [judge.url], "concurrency": args.concurrency,
                                                            "max_retries": 6, "timeout": 30}, export=False)
            judge.reset()
            cold_cpu, cold_wall, cold_loop, cold_udf, cold = timed_build(root)
            warm_cpu, warm_wall, _, _, warm = timed_build(root, full_refresh=True)
            if cold["requests"] != args.n or warm["requests"] or cold["failed"]:
                raise SystemExit(f"CHECK FAILED: cold {cold}, warm {warm}")
            per_request = (cold_cpu - warm_cpu) / cold["requests"]
            rows.append([i, cold_wall, cold_cpu, warm_wall, warm_cpu, per_request * 1e6,
                         cold_loop / cold["requests"] * 1e6, cold_cpu / cold["requests"] * 1e6,
                         cold_udf / cold["requests"] * 1e6])
    print(f"\n{args.n:,} requests, zero-latency fake judge, concurrency {args.concurrency}; "
          f"load before: {load_before}, after: {load_average()}\n")
    print(table(["round", "cold wall s", "cold CPU s", "warm wall s", "warm CPU s", "cold minus warm per request µs",
                 "cold build CPU per request µs", "judge UDF threads µs", "judge loop thread µs"],
                [[r[0], r[1], r[2], r[3], r[4], f"{r[5]:.0f}", f"{r[7]:.0f}", f"{r[8]:.0f}", f"{r[6]:.0f}"]
                 for r in rows]))
    counted = rows[1:] or rows
    print(f"\nrequest path, nothing subtracted (medians of rounds 1-{len(rows) - 1}): cold build "
          f"{statistics.median(r[7] for r in counted):.0f} µs per request, of which the judge UDF's threads "
          f"{statistics.median(r[8] for r in counted):.0f} µs and the judge loop thread "
          f"{statistics.median(r[6] for r in counted):.0f} µs")
    print(f"cold minus cached rebuild: {statistics.median(r[5] for r in counted):.0f} µs per request; "
          f"warm-cache CPU per row: {statistics.median(r[4] for r in rows[1:] or rows) / args.n * 1e6:.0f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
