"""The judgment cache's look-up of one 2,048-row batch, at 100k, 1M and 10M cached judgments (issue 16 §2).

Each cache is made through the cache's own migrations and filled by SQL with synthetic judgments (SHA-256 keys,
prompt keys, two ratings, two rationales and an answer of ~120 characters each), then opened as a build opens
it. Timed, best of --repeat (wall and CPU of this process), for a batch's keys as `JudgmentCache.lookup_table`
gets them from the judge UDF (the UDF's result columns, as Arrow):

- miss: 2,048 keys not in the cache (a cold build);
- rebuild: 2,048 keys stored one after another (a rebuild or --full-refresh asks for them in the order the
  build that judged them stored them), all hits;
- rebuild, half: 1,024 of those and 1,024 misses;
- scattered, half: 1,024 hits drawn anywhere in the cache and 1,024 misses;
- before: the previous look-up (a semi join of the batch's keys with the table), for the same "rebuild, half".

The key index is read by the first look-up of a build; its time is shown on its own (once per build).

    python bench/cache_lookup.py [--sizes 100000,1000000,10000000] [--repeat 5] [--work bench/out/cache_lookup]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from pathlib import Path

from _common import REPO, load_average, table

from prefclean.judge.cache import JudgmentCache
from prefclean.judge.keys import key_hash_sql
from prefclean.judge.record import CACHE_NAMES, from_cache_sql

BATCH = 2048


def key(i: int, kind: str = "k") -> str:
    return hashlib.sha256(f"{kind}{i}".encode()).hexdigest()


def fill(path: Path, n: int) -> None:
    """n synthetic judgments in a cache made by its migrations, in chunks of a million (as builds store them)."""
    JudgmentCache(path).close()
    import duckdb

    con = duckdb.connect(str(path))
    con.execute("set memory_limit = '2GB'")
    for start in range(0, n, 1_000_000):
        stop = min(n, start + 1_000_000)
        con.execute(f"""insert into judgments ({', '.join(CACHE_NAMES)}, key_hash, prompt_hash)
            select *, {key_hash_sql('key')}, {key_hash_sql('prompt_key')} from (select
              [1 + i % 5, 1 + (i * 7) % 5] as ratings,
              ['The first answer is correct and explains its steps; number ' || i || ' in the cache.',
               'The second answer ignores the question and repeats it; number ' || i || '.'] as rationales,
              1 as winner, 'fake' as judge, 'fake-judge' as model, 'ultrafeedback' as task,
              'overall-rating' as aspect,
              '#### Output for Text 1' || chr(10) || 'Rating: 4' || chr(10) || 'Rationale: correct ' || i ||
              chr(10) || '#### Output for Text 2' || chr(10) || 'Rating: 2' || chr(10) || 'Rationale: off' as raw,
              300 + i % 50 as prompt_tokens, 40 + i % 9 as completion_tokens, 12.5 as latency_ms,
              sha256('k' || i) as key, 'openai' as engine, sha256('p' || i) as prompt_key
            from range({start}, {stop}) t(i))""")
    con.execute("checkpoint")
    con.close()


def timed(fn, repeat: int) -> tuple[float, float, int]:
    """(best wall ms, CPU ms of that run, rows found)."""
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        found = fn()
        runs.append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, found))
    return min(runs)


def measure(path: Path, n: int, repeat: int) -> dict:
    cache = JudgmentCache(path)
    select, params = from_cache_sql(), ["fake", "ultrafeedback", "overall-rating"]
    rng = random.Random(n)

    def lookup(keys):
        return lambda: len(cache.lookup_table(keys, select, params)[1])

    def rebuild(count):
        start = rng.randrange(n - count)
        return [key(i) for i in range(start, start + count)]

    misses = [key(i, "miss") for i in range(BATCH)]
    wall, cpu = time.perf_counter(), time.process_time()
    cache.lookup_table(misses[:1], select, params)  # reads the key index
    index = ((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000)
    out = {"n": n, "index": index}
    out["miss"] = timed(lookup(misses), repeat)
    out["rebuild"] = min(timed(lookup(rebuild(BATCH)), 1) for _ in range(repeat))
    out["rebuild, half"] = min(timed(lookup(rebuild(BATCH // 2) + misses[:BATCH // 2]), 1) for _ in range(repeat))
    out["scattered, half"] = min(timed(lookup([key(rng.randrange(n)) for _ in range(BATCH // 2)]
                                              + misses[:BATCH // 2]), 1) for _ in range(repeat))
    con = cache._con

    def semi_join(keys):
        return lambda: len(con.execute(f"select j.{', j.'.join(CACHE_NAMES)} from judgments j semi join "
                                       "(select unnest(?::varchar[]) as key) w on j.key = w.key", [keys]).fetchall())

    out["before"] = min(timed(semi_join(rebuild(BATCH // 2) + misses[:BATCH // 2]), 1)
                        for _ in range(max(1, repeat if n <= 1_000_000 else 2)))
    cache.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "cache_lookup")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        path = args.work / f"judgments_{n}.duckdb"
        if not path.exists():  # kept between runs: filling 10M takes minutes
            started = time.perf_counter()
            fill(path, n)
            print(f"filled {n:,} judgments in {time.perf_counter() - started:.0f}s "
                  f"({path.stat().st_size / 2**20:.0f} MiB)", flush=True)
        load = load_average()
        results.append(measure(path, n, args.repeat))
        print(f"{n:,}: measured (load before {load}, after {load_average()})", flush=True)
    kinds = ["miss", "rebuild", "rebuild, half", "scattered, half", "before"]
    rows = [[f"{r['n']:,}", f"{r['index'][0]:.0f} ms ({r['index'][1]:.0f} CPU)"]
            + [f"{r[k][0]:.1f} ms ({r[k][1]:.1f} CPU, {r[k][2]} found)" for k in kinds] for r in results]
    print()
    print(table(["cached judgments", "key index read (once a build)"] + [f"{k}" for k in kinds], rows))
    print(f"\n2,048 keys per look-up, best of {args.repeat}; load after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
