"""What storing a batch of answers costs as the judgment cache grows: `JudgmentCache.store` of 100 new judgments,
and the two SQL statements it can use (plain INSERT, INSERT OR REPLACE), on COPIES of existing caches.

Why: a cold build stores its answers batch by batch, so a store whose cost follows the table's size makes judging
slower per row the bigger the cache (issue 16 §6: 1.59x per request at 2M against 200k, on a quiet machine).

    python bench/cache_store.py bench/out/million/project/target/judgments.duckdb [more caches ...]

Each cache is copied to a temporary folder first; the originals are never written.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from prefclean.judge.cache import JudgmentCache  # noqa: E402
from prefclean.judge.record import Judgment  # noqa: E402


def judgment(key: str) -> Judgment:
    return Judgment(key=key, judge="j", engine="openai", model="m", task="ultrafeedback", aspect="overall",
                    ratings=[4, 2], rationales=["good", "weak"], winner=1, raw="Rating: 4", prompt_tokens=10,
                    completion_tokens=5, latency_ms=1.0)


def call(key: str) -> dict:
    return {"key": key, "judge": "j", "model": "m", "status": "ok", "error": None, "http_status": 200,
            "latency_ms": 1.0, "prompt_tokens": 10, "completion_tokens": 5, "attempt": 1}


def median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(path: Path, rounds: int) -> dict:
    cache = JudgmentCache(path)
    cache.lookup(["warm-up"])  # the key index is read by a build's first look-up
    rows = cache._con.execute("select count(*) from judgments").fetchone()[0]

    def store():
        keys = [uuid.uuid4().hex for _ in range(100)]
        cache.store([judgment(k) for k in keys], [call(k) for k in keys])

    result = {"judgments": rows, "store": median_ms(store, rounds)}
    cache.close()
    con = duckdb.connect(str(path))
    con.execute("set memory_limit = '512MB'")  # as the cache runs
    for verb in ("insert", "insert or replace"):
        def statement():
            con.execute("begin")
            con.execute(f"{verb} into judgments select * replace (md5(key || ?) || md5(key) as key) "
                        "from judgments where rowid < 100", [uuid.uuid4().hex])
            con.execute("commit")
        result[verb] = median_ms(statement, rounds)
    con.close()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("caches", type=Path, nargs="+")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    print("| judgments in the cache | store of 100 new (ms) | plain INSERT of 100 (ms) | INSERT OR REPLACE of 100 (ms) "
          "| replace / insert |")
    print("|---|---|---|---|---|")
    for cache in args.caches:
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "judgments.duckdb"
            shutil.copyfile(cache, copy)
            r = measure(copy, args.rounds)
        print(f"| {r['judgments']:,} | {r['store']:.1f} | {r['insert']:.1f} | {r['insert or replace']:.1f} "
              f"| {r['insert or replace'] / r['insert']:.1f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
