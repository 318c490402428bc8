"""What the benchmarks share: synthetic pairs, a throwaway copy of the example project, fake judges,
measuring a command (wall time, peak memory of its whole process tree) and printing tables.

Memory is read from /proc (Linux) so the benchmarks need no extra package: the peak of the summed RSS of
a process and all its descendants, sampled every 20 ms, and the kernel's exact peak of the largest single
process (ru_maxrss from wait4).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.servers.fake_judge import FakeJudge  # noqa: E402  (a real HTTP server subprocess)

PREFCLEAN = [sys.executable, "-m", "prefclean.cli"]
FILLER = ("The answer considers the question carefully, explains each step in plain words and checks the "
          "result against the facts given in the prompt before it concludes. ")


def synthetic_pairs(n: int, *, start: int = 0, variant: str = "") -> pa.Table:
    """n distinct pairs in the orca_dpo_pairs schema, built column-wise in Arrow (fast for millions).

    Ratings are planted for the fake judge: chosen says [[rate=4]], rejected [[rate=2]], except every
    7th pair (label noise: rejected is better) and every 11th (a tie)."""
    ids = pa.array(range(start, start + n), pa.int64())
    text_ids = pc.cast(ids, pa.string())
    mod7 = pc.equal(pc.remainder(ids, 7), 0)
    mod11 = pc.equal(pc.remainder(ids, 11), 0)
    chosen_rate = pc.if_else(mod7, "2", pc.if_else(mod11, "3", "4"))
    rejected_rate = pc.if_else(mod7, "4", pc.if_else(mod11, "3", "2"))
    join = pc.binary_join_element_wise
    sep = ""
    question = join(f"Question {variant}", text_ids, ": how many apples are left if we start with ", text_ids,
                    " and eat three? Show the steps.", sep)
    chosen = join("Start with ", text_ids, " apples and eat three, which leaves the rest. ", FILLER,
                  "[[rate=", chosen_rate, "]]", sep)
    rejected = join("It is ", text_ids, " apples, nothing changes. ", FILLER[:80], "[[rate=", rejected_rate, "]]",
                    sep)
    system = pc.if_else(pc.equal(pc.remainder(ids, 3), 0), "", "You are a helpful assistant.")
    return pa.table({"system": system, "question": question, "chosen": chosen, "rejected": rejected})


def write_pairs(path: Path, table: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=100_000)
    return path


def make_project(root: Path, source_path: Path, judge: dict, *, bias_check: bool = False,
                 export: bool = True) -> Path:
    """A copy of the example project (models, macros, udfs) reading a Parquet file, judged by `judge`."""
    root, source_path = root.resolve(), source_path.resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for folder in ("models", "macros", "udfs", "data_tests"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, root / folder)
    config = {
        "name": "bench",
        "vars": {"source": "pairs", "shuffle_seed": 42, "judges": ["default"], "aspect": "overall-rating",
                 "check_position_bias": bias_check, "drop_position_biased": True, "min_margin": 1,
                 "poor_max": 2, "min_agreement": 1.0, "allow_flip": False},
        "sources": {"pairs": {"type": "parquet", "path": str(source_path), "columns": {"question": "instruction"}}},
        "judges": {"default": {"engine": "openai", "model": "fake-judge", "temperature": 0.0, "max_tokens": 256,
                               **judge}},
    }
    if export:
        config["exports"] = {"cleaned": {"model": "cleaned_pairs", "target": "parquet",
                                         "path": "target/exports/cleaned.parquet"}}
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


# -- measuring a command --------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_kib(p)
        stack.extend(_children(p))
    return total


@dataclass
class Measured:
    seconds: float
    peak_tree_mib: float
    peak_proc_mib: float
    returncode: int
    output: str
    cpu_seconds: float = 0.0  # user + system CPU of the process (its threads; not of the fake judges)


def measure(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None, timeout: float = 3600,
            sample_memory: bool = True) -> Measured:
    """Run cmd to completion; wall time, peak summed RSS of its process tree, peak RSS of one process.
    With sample_memory=False the tree's RSS is not sampled (peak_tree_mib is 0), so the harness wakes no
    thread while a timed run shares the machine's cores."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_kib(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_memory:
        sampler.start()
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    killer.cancel()
    seconds = time.perf_counter() - start
    done.set()
    if sample_memory:
        sampler.join()
    reader.join(10)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(seconds, peak[0] / 1024, usage.ru_maxrss / 1024, proc.returncode, "".join(chunks),
                    usage.ru_utime + usage.ru_stime)


def prefclean(root: Path, *args: str, env: dict | None = None, sample_memory: bool = True) -> Measured:
    root = root.resolve()
    result = measure([*PREFCLEAN, "build", "--project-dir", str(root), *args], cwd=root,
                     env={"PREFCLEAN_PROGRESS": "0", **(env or {})}, sample_memory=sample_memory)
    if result.returncode != 0:
        raise SystemExit(f"prefclean build failed (exit {result.returncode}):\n{result.output[-4000:]}")
    return result


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table (readable in a terminal and pasteable into RESULTS.md)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"
