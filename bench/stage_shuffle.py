"""Staging + shuffle of N pairs: prefclean (DuckDB, the example models stg_pairs and shuffled_pairs) vs the
same job written with `datasets` (load the Parquet file, drop incomplete rows, give each pair an id, drop
repeated pairs, put the two responses in a seeded random order per row with Python's random, count each
response's words, keep the columns): the same steps as the models stg_pairs and shuffled_pairs.

    python bench/stage_shuffle.py [--n 1000000]

Both run as fresh processes (imports included) from cold caches; peak memory is the process tree's.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from _common import REPO, load_average, make_project, measure, prefclean, ratio, synthetic_pairs, table, write_pairs
from million import stage_times

# The `datasets` version of the job, as a user would write it (run in a fresh interpreter).
WITH_DATASETS = '''
import hashlib, random, sys, time
start = time.perf_counter()
import datasets
source, out, cache = sys.argv[1:4]
ds = datasets.load_dataset("parquet", data_files=source, split="train", cache_dir=cache)
ds = ds.filter(lambda r: r["question"] is not None and r["chosen"] is not None and r["rejected"] is not None)

def shuffle(row):
    fields = [(f or "").encode() for f in (row["system"], row["question"], row["chosen"], row["rejected"])]
    pair_id = hashlib.md5(b"".join(b"%d:%s" % (len(f), f) for f in fields)).hexdigest()  # as pair_text()
    order = ["chosen", "rejected"]
    random.Random(pair_id + "#42").shuffle(order)  # a seeded coin per row
    return {"pair_id": pair_id, "system": row["system"] or "", "instruction": row["question"],
            "generations": [row[o] for o in order], "order": order,
            "chosen_words": len(row["chosen"].split()), "rejected_words": len(row["rejected"].split())}

ds = ds.map(shuffle, remove_columns=["question"])
seen = set()
ds = ds.filter(lambda r: not (r["pair_id"] in seen or seen.add(r["pair_id"])))  # keep each pair's first row
ds = ds.select_columns(["pair_id", "system", "instruction", "chosen", "rejected", "generations", "order",
                        "chosen_words", "rejected_words"])
ds.to_parquet(out)
print(f"ROWS {len(ds)} WORK {time.perf_counter() - start:.2f}")
'''


def rows_out(output: str) -> int:
    """Rows in shuffled_pairs, from the build's model line."""
    return int(re.search(r"table shuffled_pairs \.+ (\d+) rows", output).group(1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "stage_shuffle")
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    source = write_pairs(args.work / "pairs.parquet", synthetic_pairs(args.n))
    load_before = load_average()

    root = make_project(args.work / "project", source, {"base_urls": ["http://127.0.0.1:9/v1"]}, export=False)
    pc = prefclean(root, "--select", "+shuffled_pairs", "--no-tests")
    times = stage_times(pc.output, pc.seconds)
    pc_work = times["staging"] + times["shuffle"]

    script = args.work / "with_datasets.py"
    script.write_text(WITH_DATASETS, encoding="utf-8")
    with tempfile.TemporaryDirectory(dir=args.work) as cache:
        ds = measure([sys.executable, str(script), str(source), str(args.work / "datasets.parquet"), cache],
                     env={"HF_DATASETS_CACHE": cache, "HF_HUB_OFFLINE": "1"})
    if ds.returncode != 0:
        raise SystemExit(f"datasets job failed:\n{ds.output[-3000:]}")
    ds_rows, ds_work = ds.output.split("ROWS ")[1].split()[0::2]
    print("prefclean: " + ", ".join(f"{k} {v:.2f}s" for k, v in times.items()))
    print(f"\n{args.n:,} pairs: staging (pair ids, dedupe) + seeded shuffle + word counts of each pair; "
          f"load before: {load_before}, after: {load_average()}\n")
    print(table(["", "wall s (process)", "work s (no start-up)", "peak RSS tree MiB", "rows out"], [
        ["prefclean (DuckDB)", pc.seconds, pc_work, pc.peak_tree_mib, rows_out(pc.output)],
        ["datasets.map", ds.seconds, float(ds_work), ds.peak_tree_mib, int(ds_rows)],
        ["datasets / prefclean", ratio(ds.seconds, pc.seconds), ratio(float(ds_work), pc_work),
         ratio(ds.peak_tree_mib, pc.peak_tree_mib), ""],
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
