"""Judging throughput against one judge server at several concurrency levels, the client's cost per row,
and a rerun served by the judgment cache.

Why: with a remote judge, prefclean should be limited by the server, not by itself. A fake judge that answers
every request after --latency-ms (no capacity limit) can serve at most concurrency / latency requests per
second; "of ideal" is how close the judged_pairs model gets to that. A bare aiohttp client sending the same
requests at the same concurrency (no prefclean) shows what this machine and server allow at all. A
zero-latency server then shows what a row costs prefclean itself: wall time per row and the client's CPU per
request, read with getrusage when the prefclean process is reaped (the marginal cost, minus a warm-cache
rebuild that renders and looks up the same rows but sends nothing). That rebuild (`--full-refresh`, every
answer from the judgment cache) is also the warm-cache figure.

    python bench/judge_throughput.py [--n 2000] [--latency-ms 50] [--concurrency 1,8,32,64] [--baseline 8,32,64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import sys
import time
from pathlib import Path

import aiohttp

from _common import REPO, FakeJudge, load_average, make_project, prefclean, synthetic_pairs, table, write_pairs

JUDGED = re.compile(r"judged_pairs \.\.\. (\d+) rows in ([\d.]+)s")
NOTE = re.compile(r"judged (\d+), failed (\d+), cached (\d+).*?requests (\d+), retries (\d+)")
TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far: the fake judge's, which is not reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(root: Path, judge: FakeJudge, *args: str) -> dict:
    """One `prefclean build`: judging stage time, counts, and the CPU of the prefclean process and the server."""
    judge.reset(keep_latency=True)
    client_before, server_before = children_cpu(), process_cpu(judge.process.pid)
    m = prefclean(root, "--no-tests", *args, sample_memory=False)  # time and CPU only: no sampler on the cores
    client_cpu = children_cpu() - client_before  # prefclean is the only child reaped meanwhile (measure's wait4)
    server_cpu = process_cpu(judge.process.pid) - server_before
    rows, seconds = JUDGED.search(m.output).groups()
    judged, failed, cached, requests, retries = map(int, NOTE.search(m.output).groups())
    stats = judge.stats()
    return {"rows": int(rows), "judging_s": float(seconds), "wall": m.seconds, "judged": judged, "failed": failed,
            "cached": cached, "requests": requests, "retries": retries, "server_requests": stats["requests"],
            "max_in_flight": stats["max_in_flight"], "client_cpu": client_cpu, "server_cpu": server_cpu,
            "server_held_ms": stats["held_seconds"] / max(1, stats["requests"]) * 1000}


def project(work: Path, name: str, judge: FakeJudge, concurrency: int) -> Path:
    return make_project(work / name, work / "pairs.parquet",
                        {"base_urls": [judge.url], "concurrency": concurrency, "max_retries": 6, "timeout": 30},
                        export=False)


def bare_client_seconds(url: str, n: int, concurrency: int) -> float:
    """n chat requests of about prefclean's size at this concurrency from a plain aiohttp client: the
    machine's and the server's own limit, with nothing of prefclean in the way."""
    bodies = [json.dumps({"model": "fake-judge", "messages": [{"role": "user", "content": (
        f"{r['question']}\n<text 1>\n{r['chosen']}\n</text 1>\n<text 2>\n{r['rejected']}\n</text 2>")}]})
        for r in synthetic_pairs(n).to_pylist()]

    async def run() -> float:
        slots = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async def one(body: str) -> None:
                async with slots, session.post(f"{url}/chat/completions", data=body,
                                               headers={"Content-Type": "application/json"}) as resp:
                    json.loads(await resp.read())

            start = time.perf_counter()
            await asyncio.gather(*(one(b) for b in bodies))
            return time.perf_counter() - start

    return asyncio.run(run())


def concurrency_table(args, levels: list[int], baseline: set[int]) -> tuple[str, dict]:
    rows, of_ideal = [], {}
    with FakeJudge(latency_ms=args.latency_ms) as judge:
        for c in levels:
            r = build(project(args.work, f"c{c}", judge, c), judge)
            throughput = r["judged"] / r["judging_s"]
            ideal = c / (args.latency_ms / 1000)
            of_ideal[c] = throughput / ideal
            bare = args.n / bare_client_seconds(judge.url, args.n, c) / ideal if c in baseline else None
            rows.append([c, r["judging_s"], r["server_requests"], r["max_in_flight"], f"{r['server_held_ms']:.1f}",
                         f"{throughput:.1f}",
                         f"{ideal:.0f}", f"{of_ideal[c]:.2f}", f"{bare:.2f}" if bare else "-", r["failed"]])
    return table(["concurrency", "judging s", "requests", "max in flight", "server held ms", "judged rows/s", "ideal rows/s",
                  "achieved / ideal", "bare aiohttp client / ideal", "failed rows"], rows), of_ideal


def overhead_table(args) -> tuple[str, dict, dict]:
    """Zero-latency server: a cold build (every row a request), then a warm-cache full refresh (no request)."""
    with FakeJudge(latency_ms=0) as judge:
        root = project(args.work, "zero", judge, args.overhead_concurrency)
        cold = build(root, judge)
        warm = build(root, judge, "--full-refresh")
    rows = []
    for name, r in (("cold, zero latency", cold), ("warm cache (--full-refresh)", warm)):
        rows.append([name, r["wall"], r["judging_s"], r["server_requests"], r["cached"],
                     f"{r['judging_s'] / r['rows'] * 1e6:.0f}", r["client_cpu"],
                     f"{r['client_cpu'] / r['rows'] * 1e6:.0f}",
                     f"{r['server_cpu'] / r['server_requests'] * 1e6:.0f}" if r["server_requests"] else "-"])
    return table(["run", "build wall s", "judging s", "requests", "cached rows", "judging wall per row µs",
                  "client CPU s (whole build)", "client CPU per row µs", "server CPU per request µs"], rows), \
        cold, warm


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--baseline", default="8,32,64", help="concurrency levels also run with a bare client")
    parser.add_argument("--overhead-concurrency", type=int, default=32, help="concurrency of the zero-latency run")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "judge_throughput")
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    write_pairs(args.work / "pairs.parquet", synthetic_pairs(args.n))
    levels = [int(c) for c in args.concurrency.split(",")]
    load_before = load_average()

    baseline = {int(c) for c in args.baseline.split(",") if c}
    concurrency, of_ideal = concurrency_table(args, levels, baseline)
    print(f"\n{args.n:,} pairs, one fake judge answering each request after {args.latency_ms:g} ms (no capacity "
          f"limit): ideal = concurrency / latency. load before: {load_before}, after: {load_average()}\n")
    print(concurrency)

    load_before = load_average()
    overhead, cold, warm = overhead_table(args)
    marginal = (cold["client_cpu"] - warm["client_cpu"]) / cold["requests"] if cold["requests"] else 0.0
    print(f"\nper-row overhead: zero-latency server, concurrency {args.overhead_concurrency}; then the same project "
          f"rebuilt with --full-refresh (every row from the judgment cache). load before: {load_before}, "
          f"after: {load_average()}\n")
    print(overhead)
    print(f"\nclient CPU per request: {marginal * 1e6:.0f} µs (cold minus warm-cache CPU, over "
          f"{cold['requests']:,} requests)")
    print(f"warm cache: {warm['rows']:,} rows judged in {warm['judging_s']:.2f} s with {warm['server_requests']} "
          f"requests (target: under 1 s)")
    for c in levels:
        if c == 32:
            print(f"achieved / ideal at concurrency 32: {of_ideal[c]:.2f} (target: at least 0.90)")
    if warm["server_requests"] or cold["failed"] or cold["requests"] != args.n:
        print("CHECK FAILED: the cold run must send one request per row and the warm rerun none")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
