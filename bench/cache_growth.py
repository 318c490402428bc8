"""Does the judgment cache slow a cold build down as it fills? Its traffic during cold judging, replayed against
caches of different sizes, piece by piece.

Why: a cold build of 2M pairs judged at 1.59x the per-request time of a 200k build in one pair of runs and 1.01x
in another (issue 16 §6). Whole builds at two sizes differ in more than the cache (the warehouse's tables, the
machine's load minute by minute), so here the cache alone gets what a cold build sends it for each batch of
2,048 rows: a look-up of the batch's input keys (all misses), a look-up of their prompt keys (all misses), and a
store of the answers with their call log, in the writer thread's `store` as the build runs it. Each size starts
from a synthetic cache of N judgments (SHA-256 keys, answers of a realistic size), made with SQL in seconds.

    python bench/cache_growth.py [--sizes 200000,2000000] [--batches 40] [--rows 2048]

Prints, per size, the mean milliseconds of each piece and of the store's own parts (its INSERT, the key
index's tail read, the index's bookkeeping), so a piece that grows with the cache shows by name.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import load_average, table  # noqa: E402

from prefclean.judge import cache as cache_module  # noqa: E402
from prefclean.judge.arrays import strings  # noqa: E402
from prefclean.judge.cache import JudgmentCache  # noqa: E402
from prefclean.judge.keys import key_hash_sql  # noqa: E402
from prefclean.judge.record import Judgment, from_cache_sql  # noqa: E402

RATIONALE = "The response answers the question directly and accurately, with a short justification. " * 2


def make_cache(path: Path, n: int) -> None:
    """A cache of `n` judgments as a cold build leaves it: one call logged per judgment."""
    cache = JudgmentCache(path)  # the tables, by the cache's own migrations
    con = cache._con
    con.execute(f"""insert into judgments (key, judge, engine, model, task, aspect, ratings, rationales, winner, raw,
                                         prompt_tokens, completion_tokens, latency_ms, prompt_key, key_hash, prompt_hash)
        select k, 'default', 'openai', 'm', 'ultrafeedback', 'overall', [4, 2], [?, ?], 1,
               'Rating: 4 Rationale: ' || ? || ' Rating: 2', 610, 120, 1.0, pk, {key_hash_sql('k')}, {key_hash_sql('pk')}
        from (select sha256('k' || i) as k, sha256('p' || i) as pk from range(?) t(i))""",
                [RATIONALE, RATIONALE, RATIONALE, n])
    con.execute("""insert into calls (key, judge, model, status, http_status, latency_ms, prompt_tokens,
                   completion_tokens, attempt, cost_usd)
                   select sha256('k' || i), 'default', 'm', 'ok', 200, 1.0, 610, 120, 1, 0.0 from range(?) t(i)""", [n])
    cache.close()


def judgment(key: str, prompt_key: str) -> Judgment:
    return Judgment(key=key, prompt_key=prompt_key, judge="default", engine="openai", model="m",
                    task="ultrafeedback", aspect="overall", ratings=[4, 2], rationales=[RATIONALE, RATIONALE],
                    winner=1, raw="Rating: 4\nRationale: " + RATIONALE, prompt_tokens=610, completion_tokens=120,
                    latency_ms=1.0)


def call(key: str) -> dict:
    return {"key": key, "judge": "default", "model": "m", "status": "ok", "error": None, "http_status": 200,
            "latency_ms": 1.0, "prompt_tokens": 610, "completion_tokens": 120, "attempt": 1, "cost_usd": 0.0}


class Timers:
    """Wall time of named pieces, summed per batch."""

    def __init__(self):
        self.batch: dict[str, float] = {}
        self.batches: list[dict[str, float]] = []

    @contextmanager
    def piece(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.batch[name] = self.batch.get(name, 0.0) + time.perf_counter() - start

    def end_batch(self) -> None:
        self.batches.append(self.batch)
        self.batch = {}


def instrument(cache: JudgmentCache, timers: Timers) -> None:
    """Time the store's own parts (its SQL statements by kind, the key index's bookkeeping) on this instance."""
    original_index_stored = cache._index_stored

    def index_stored(cur, judgments):
        with timers.piece("store: key index update (tail read + add)"):
            return original_index_stored(cur, judgments)

    cache._index_stored = index_stored


def sha(prefix: str) -> str:
    return hashlib.sha256((prefix + uuid.uuid4().hex).encode()).hexdigest()


def replay(path: Path, batches: int, rows: int) -> dict[str, float]:
    cache = JudgmentCache(path)
    timers = Timers()
    instrument(cache, timers)
    params = ["default", "ultrafeedback", "overall"]
    for number in range(batches + 1):
        keys = [sha("k") for _ in range(rows)]
        prompt_keys = [sha("p") for _ in range(rows)]
        with timers.piece("look-up: input keys"):
            cache.answers(strings(keys), from_cache_sql(), params)
        with timers.piece("look-up: prompt keys"):
            cache.answers(strings(prompt_keys), from_cache_sql(), params, prompts=True)
        with timers.piece("store (whole)"):
            cache.store([judgment(k, p) for k, p in zip(keys, prompt_keys)], [call(k) for k in keys])
        if number:  # the first batch reads the key indexes (once per build)
            timers.end_batch()
        else:
            timers.batch = {}
    total = cache._con.execute("select count(*) from judgments").fetchone()[0]
    cache.close()
    names = list(timers.batches[0])
    # the mean, not the median: a store that meets a checkpoint costs many times the others, and the build pays it
    means = {name: statistics.mean(b.get(name, 0.0) for b in timers.batches) * 1000 for name in names}
    means["store: INSERT and the rest"] = means["store (whole)"] - means["store: key index update (tail read + add)"]
    means["store: slowest"] = max(b["store (whole)"] for b in timers.batches) * 1000
    means["judgments at the end"] = total
    return means


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,2000000", help="judgments in the cache at the start, comma-separated")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rows", type=int, default=2048, help="rows per batch (DuckDB's vector size)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load before: {load_average()}; cache memory limit {cache_module.CACHE_MEMORY_LIMIT}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="prefclean-cache-growth-") as tmp:
        for n in sizes:
            path = Path(tmp) / f"judgments-{n}.duckdb"
            start = time.perf_counter()
            make_cache(path, n)
            print(f"made a cache of {n:,} judgments in {time.perf_counter() - start:.1f}s "
                  f"({path.stat().st_size / 2**20:.0f} MiB)", flush=True)
            results[n] = replay(path, args.batches, args.rows)
            path.unlink()
    names = [k for k in results[sizes[0]] if k != "judgments at the end"]
    rows = [[name] + [results[n][name] for n in sizes] + ([f"{results[sizes[-1]][name] / results[sizes[0]][name]:.2f}x"]
                                                          if results[sizes[0]][name] else ["-"]) for name in names]
    print(f"\nmean ms per batch of {args.rows:,} rows ({args.batches} batches after the first):")
    print(table(["piece"] + [f"{n:,} judgments" for n in sizes] + ["last / first"], rows))
    print(f"load after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
