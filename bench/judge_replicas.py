"""Judging throughput with 1, 2 and 4 judge replicas (a judge's `base_urls:` list), and a replica killed mid-run.

Each replica is a fake judge server with limited capacity: it serves at most --capacity requests at once,
each taking --latency-ms, so its ideal throughput is capacity / latency. prefclean gets the same
per-replica concurrency (`concurrency:` is per replica), so N replicas can at best give N times one.
(Throughput against one server at several concurrency levels: bench/judge_throughput.py.)

    python bench/judge_replicas.py [--n 1200] [--latency-ms 200] [--capacity 8] [--replicas 1,2,4]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import sys
import threading
from pathlib import Path

from _common import REPO, FakeJudge, load_average, make_project, prefclean, synthetic_pairs, table, write_pairs

JUDGED = re.compile(r"judged_pairs \.\.\. (\d+) rows in ([\d.]+)s")
NOTE = re.compile(r"judged (\d+), failed (\d+), cached (\d+).*?requests (\d+), retries (\d+)")


def start_replicas(count: int, latency_ms: float, capacity: int, stack: contextlib.ExitStack) -> list[FakeJudge]:
    judges = [stack.enter_context(FakeJudge(latency_ms=latency_ms)) for _ in range(count)]
    for j in judges:
        j.control(max_concurrency=capacity)
    return judges


def build(work: Path, name: str, judges: list[FakeJudge], n: int, capacity: int, *, kill_after: int = 0) -> dict:
    """One cold build judging n pairs; with kill_after, the last replica is killed once that many requests
    were answered in all."""
    root = make_project(work / name, work / "pairs.parquet",
                        {"base_urls": [j.url for j in judges], "concurrency": capacity, "max_retries": 6,
                         "timeout": 30}, export=False)
    killed = threading.Event()
    done = threading.Event()
    counts: dict[str, int] = {}

    def killer():
        while not done.wait(0.05):
            answered = sum(j.stats()["completions"] for j in judges)
            if answered >= kill_after:
                counts["before_kill"] = judges[-1].stats()["requests"]
                judges[-1].process.kill()  # a crash: no goodbye, connections drop
                killed.set()
                return

    watcher = threading.Thread(target=killer, daemon=True) if kill_after else None
    if watcher:
        watcher.start()
    m = prefclean(root, "--no-tests")
    done.set()
    if watcher:
        watcher.join()
    seconds = float(JUDGED.search(m.output).group(2))
    judged, failed, cached, requests, retries = map(int, NOTE.search(m.output).groups())
    per_replica = [counts["before_kill"] if (kill_after and i == len(judges) - 1 and killed.is_set())
                   else j.stats()["requests"] for i, j in enumerate(judges)]
    return {"judging_s": seconds, "wall": m.seconds, "judged": judged, "failed": failed, "requests": requests,
            "retries": retries, "per_replica": per_replica, "killed": killed.is_set()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1200)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--capacity", type=int, default=8, help="requests one replica serves at once")
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--no-failover", action="store_true", help="skip the kill-a-replica run")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "judge_replicas")
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    write_pairs(args.work / "pairs.parquet", synthetic_pairs(args.n))
    per_replica_ideal = args.capacity / (args.latency_ms / 1000)
    load_before = load_average()
    rows, baseline = [], None
    counts = [int(c) for c in args.replicas.split(",")]
    for count in counts:
        with contextlib.ExitStack() as stack:
            judges = start_replicas(count, args.latency_ms, args.capacity, stack)
            r = build(args.work, f"r{count}", judges, args.n, args.capacity)
        throughput = r["judged"] / r["judging_s"]
        baseline = baseline or throughput / counts[0]
        ideal = per_replica_ideal * count
        rows.append([count, r["judging_s"], r["requests"], f"{throughput:.1f}", f"{ideal:.0f}",
                     f"{throughput / ideal:.0%}", f"{throughput / baseline:.2f}x",
                     " / ".join(map(str, r["per_replica"])), r["failed"]])
    print(f"\n{args.n:,} pairs; each replica: capacity {args.capacity} at once, {args.latency_ms:g} ms per request "
          f"-> ideal {per_replica_ideal:.0f} req/s; prefclean concurrency {args.capacity} per replica; "
          f"load before: {load_before}, after: {load_average()}\n")
    print(table(["replicas", "judging s", "requests", "judged rows/s", "ideal rows/s", "of ideal",
                 "vs 1 replica", "requests per replica", "failed rows"], rows))
    if not args.no_failover:
        count = max(counts)
        with contextlib.ExitStack() as stack:
            judges = start_replicas(count, args.latency_ms, args.capacity, stack)
            r = build(args.work, "failover", judges, args.n, args.capacity, kill_after=args.n // 3)
        throughput = r["judged"] / r["judging_s"]
        print(f"\nfailover: {count} replicas, the last one killed (SIGKILL) after {args.n // 3} answers:")
        print(table(["replicas", "judging s", "judged", "failed rows", "requests", "retries", "judged rows/s",
                     "requests per replica (killed one: before the kill)"],
                    [[count, r["judging_s"], r["judged"], r["failed"], r["requests"], r["retries"],
                      f"{throughput:.1f}", " / ".join(map(str, r["per_replica"]))]]))
        if not r["killed"] or r["judged"] != args.n or r["failed"]:
            print("FAILOVER CHECK FAILED: the run did not judge every row after a replica died")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
