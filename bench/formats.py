"""Format adapters at scale: N synthetic hh-rlhf transcripts and N TRL conversational rows staged through
prefclean's adapters (`prefclean build --select stg_rows` in a project made by `prefclean init --from`) vs the
same parsing written with `datasets.map` (split the transcripts into turns, find the last Assistant turn, check
both prompts agree, give each row an id and a reason when it does not fit; for the conversational rows take the
final assistant message of each side and check the roles).

    python bench/formats.py [--n 1000000]

Both run as fresh processes (imports included); peak memory is the process tree's. "CPU s" is the process's user +
system time (start-up included): on a machine shared with other jobs it says what each side costs, where wall
time also says how many cores each one got (DuckDB runs on every core, datasets.map on one).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _common import FILLER, PREFCLEAN, load_average, measure, prefclean, ratio, table

# The `datasets` version of the parsing, as a user would write it (run in a fresh interpreter).
WITH_DATASETS = '''
import hashlib, json, re, sys, time
start = time.perf_counter()
import datasets
layout, source, out, cache = sys.argv[1:5]
ds = datasets.load_dataset("parquet", data_files=source, split="train", cache_dir=cache)
TURN = re.compile(r"\\n\\n(Human|Assistant): ?")

def turns(text):
    parts = TURN.split(text)  # [before, role, content, role, content, ...]
    return [{"role": "user" if r == "Human" else "assistant", "content": c} for r, c in zip(parts[1::2], parts[2::2])]

def hh(row):
    c, r = row["chosen"], row["rejected"]
    ci, ri = c.rfind("\\n\\nAssistant:"), r.rfind("\\n\\nAssistant:")
    prompt = c[:ci] if ci >= 0 else ""
    messages = turns(prompt)
    reason = None
    if ci < 0 or ri < 0:
        reason = "no_final_assistant_turn"
    elif c[:ci] != r[:ri]:
        reason = "prompts_differ"
    chosen = re.sub("^ ", "", c[ci + len("\\n\\nAssistant:"):]) if ci >= 0 else None
    rejected = re.sub("^ ", "", r[ri + len("\\n\\nAssistant:"):]) if ri >= 0 else None
    return {"messages": messages, "chosen": chosen, "rejected": rejected, "excluded_reason": reason}

def conversational(row):
    def final(side):
        if not side:
            return None, "empty_response"
        if side[-1]["role"] != "assistant":
            return None, "no_final_assistant_turn"
        return side[-1]["content"], ("response_has_several_messages" if len(side) > 1 else None)
    chosen, cr = final(row["chosen"])
    rejected, rr = final(row["rejected"])
    messages = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
    reason = cr or rr or (None if messages and messages[-1]["role"] == "user" else "prompt_does_not_end_on_user_turn")
    return {"messages": messages, "chosen": chosen, "rejected": rejected, "excluded_reason": reason}

def with_id(row):
    text = "\\x1f".join([json.dumps(row["messages"]), row["chosen"] or "", row["rejected"] or ""])
    return {"pair_id": hashlib.md5(text.encode()).hexdigest()}

parse = hh if layout == "hh" else conversational
ds = ds.map(parse, remove_columns=[c for c in ds.column_names if c not in ("chosen", "rejected")])
ds = ds.map(with_id)
ds.to_parquet(out)
print(f"ROWS {len(ds)} WORK {time.perf_counter() - start:.2f}")
'''


def hh_rows(n: int) -> pa.Table:
    """n hh-rlhf transcripts, 1-3 earlier exchanges, built column-wise in Arrow."""
    ids = pc.cast(pa.array(range(n), pa.int64()), pa.string())
    join = pc.binary_join_element_wise
    first = join("\n\nHuman: How many apples are left if we start with ", ids, " and eat three?", "")
    earlier = join("\n\nAssistant: Let me think. ", FILLER, "\n\nHuman: Please show the steps for ", ids, ".", "")
    k = pc.remainder(pa.array(range(n), pa.int64()), 3)
    prompt = pc.if_else(pc.equal(k, 0), first,
                        pc.if_else(pc.equal(k, 1), join(first, earlier, ""), join(first, earlier, earlier, "")))
    chosen = join(prompt, "\n\nAssistant: Start with ", ids, " apples and eat three. ", FILLER, "")
    rejected = join(prompt, "\n\nAssistant: It is ", ids, " apples, nothing changes.", "")
    return pa.table({"chosen": chosen, "rejected": rejected})


def conversational_rows(n: int) -> pa.Table:
    """n TRL conversational rows (prompt, chosen, rejected as lists of {role, content})."""
    ids = pc.cast(pa.array(range(n), pa.int64()), pa.string())
    join = pc.binary_join_element_wise
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    user = join("How many apples are left if we start with ", ids, " and eat three?", "")
    system = pa.array(["You are a helpful assistant."] * n)
    prompt = pa.ListArray.from_arrays(pa.array(range(0, 2 * n + 1, 2), pa.int32()), pa.StructArray.from_arrays(
        [pc.cast(pa.array(["system", "user"] * n), pa.string()),
         pa.array([x for pair in zip(system.to_pylist(), user.to_pylist()) for x in pair])], fields=list(message)))
    one = pa.array(range(n + 1), pa.int32())
    side = lambda text: pa.ListArray.from_arrays(one, pa.StructArray.from_arrays(  # noqa: E731
        [pa.array(["assistant"] * n), text], fields=list(message)))
    return pa.table({"prompt": prompt, "chosen": side(join("Start with ", ids, " and eat three. ", FILLER, "")),
                     "rejected": side(join("It is ", ids, " apples.", ""))})


def run(layout: str, source: Path, work: Path) -> list[list]:
    project = work / f"{layout}_project"
    init = measure([*PREFCLEAN, "init", str(project), "--from", str(source)])
    if init.returncode != 0:
        raise SystemExit(f"prefclean init failed:\n{init.output[-3000:]}")
    pc_run = prefclean(project, "--select", "stg_rows", "--no-tests")
    pc_work = float(re.search(r"table stg_rows \.\.\. \d+ rows in ([\d.]+)s", pc_run.output).group(1))
    pc_rows = int(re.search(r"table stg_rows \.\.\. (\d+) rows", pc_run.output).group(1))
    script = work / "with_datasets.py"
    script.write_text(WITH_DATASETS, encoding="utf-8")
    with tempfile.TemporaryDirectory(dir=work) as cache:
        ds = measure([sys.executable, str(script), layout, str(source), str(work / f"{layout}_datasets.parquet"), cache],
                     env={"HF_DATASETS_CACHE": cache, "HF_HUB_OFFLINE": "1"})
    if ds.returncode != 0:
        raise SystemExit(f"datasets job failed:\n{ds.output[-3000:]}")
    ds_rows, ds_work = ds.output.split("ROWS ")[1].split()[0::2]
    name = {"hh": "hh-rlhf", "conv": "TRL conversational"}[layout]
    return [[f"{name}: prefclean (DuckDB)", pc_run.seconds, pc_work, pc_run.cpu_seconds, pc_run.peak_tree_mib, pc_rows],
            [f"{name}: datasets.map", ds.seconds, float(ds_work), ds.cpu_seconds, ds.peak_tree_mib, int(ds_rows)],
            [f"{name}: datasets / prefclean", ratio(ds.seconds, pc_run.seconds), ratio(float(ds_work), pc_work),
             ratio(ds.cpu_seconds, pc_run.cpu_seconds), ratio(ds.peak_tree_mib, pc_run.peak_tree_mib), ""]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "out" / "formats")
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    load_before = load_average()
    rows = []
    for layout, make in (("hh", hh_rows), ("conv", conversational_rows)):
        source = args.work / f"{layout}.parquet"
        pq.write_table(make(args.n), source, row_group_size=100_000)
        rows += run(layout, source, args.work)
    print(f"\n{args.n:,} rows per layout, parsed into the staged shape; load before: {load_before}, "
          f"after: {load_average()}\n")
    print(table(["", "wall s (process)", "work s (no start-up)", "CPU s (process)", "peak RSS tree MiB", "rows out"],
                rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
