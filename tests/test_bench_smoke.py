"""The benchmarks in bench/ run end to end on tiny inputs (so they cannot rot), and the property
bench/vs_reference.py shows against distilabel holds: a pair whose text changed is judged again, never
served an old judgment. (vs_reference.py itself needs its own distilabel virtualenv: not run here.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from _common import FakeJudge, make_project, prefclean, synthetic_pairs, write_pairs  # noqa: E402


def run_bench(script: str, *args) -> str:
    result = subprocess.run([sys.executable, str(BENCH / script), *map(str, args)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def cell(output: str, label: str) -> str:
    """The value column of a `| label | value |` row of a printed table."""
    match = re.search(rf"^\| {re.escape(label)}\s*\| ([^|]+?)\s*\|", output, re.M)
    assert match, f"no row {label!r} in:\n{output}"
    return match.group(1)


def test_million_small(tmp_path):
    out = run_bench("million.py", "--n", 300, "--replicas", 1, "--no-tests", "--work", tmp_path)
    assert cell(out, "judge requests (cold)") == "300"
    assert "rerun: " in out and ", 0 requests," in out  # the incremental rebuild judges nothing
    assert float(cell(out, "judging")) > 0


def test_judge_replicas_small(tmp_path):
    out = run_bench("judge_replicas.py", "--n", 90, "--latency-ms", 50, "--capacity", 4, "--replicas", "1,2",
                    "--work", tmp_path)
    rows = re.findall(r"^\| ([12]) +\| [\d.]+ +\| (\d+) ", out.split("failover:")[0], re.M)
    assert rows == [("1", "90"), ("2", "90")], out
    assert "FAILOVER CHECK FAILED" not in out and "failover: 2 replicas" in out


def test_judge_throughput_small(tmp_path):
    out = run_bench("judge_throughput.py", "--n", 40, "--latency-ms", 20, "--concurrency", "1,8",
                    "--overhead-concurrency", 8, "--work", tmp_path)
    rows = re.findall(r"^\| (\d+) +\| [\d.]+ +\| (\d+) +\| (\d+) +\|", out, re.M)
    assert rows == [("1", "40", "1"), ("8", "40", "8")], out  # every row sent, the concurrency limit reached
    runs = dict(re.findall(r"^\| (cold, zero latency|warm cache \(--full-refresh\)) +\| [\d.]+ +\| [\d.]+ +"
                           r"\| (\d+ +\| \d+) +\|", out, re.M))
    assert {k: v.split() for k, v in runs.items()} == {"cold, zero latency": ["40", "|", "0"],
                                                       "warm cache (--full-refresh)": ["0", "|", "40"]}, out
    assert float(cell(out, "cold, zero latency")) > 0  # build wall s
    assert re.search(r"client CPU per request: -?\d+ µs", out) and "CHECK FAILED" not in out, out



def test_judge_cpu_small(tmp_path):
    out = run_bench("judge_cpu.py", "--n", 60, "--rounds", 2, "--concurrency", 8, "--work", tmp_path)
    assert re.findall(r"^\| ([01]) +\|", out, re.M) == ["0", "1"], out  # both rounds: every row sent, then cached
    assert re.search(r"cold build \d+ µs per request, of which the judge UDF's threads \d+ µs and the judge loop "
                     r"thread \d+ µs", out), out  # the request path measured directly, nothing subtracted
    assert re.search(r"cold minus cached rebuild: -?\d+ µs per request", out), out


def test_cold_build_small(tmp_path):
    out = run_bench("cold_build.py", "--n", 40, "--runs", 2, "--latency-ms", 5, "--concurrency", 8, "--work", tmp_path)
    for phase in ("interpreter + `import prefclean.cli`", "first request to last request", "summary", "exit"):
        assert float(cell(out, phase)) >= 0, out  # every phase of both builds was seen
    assert re.search(r"cold build: median \d+\.\d+ s .*first request at \d+\.\d+ s", out), out


def test_stage_shuffle_small(tmp_path):
    out = run_bench("stage_shuffle.py", "--n", 400, "--work", tmp_path)
    row = re.search(r"^\| datasets\.map +\|.*\| ([\d,]+) +\|$", out, re.M)
    assert row and row.group(1) == "400", out


@pytest.fixture
def judge():
    with FakeJudge() as server:
        yield server


def test_changed_rows_are_judged_again(tmp_path, judge):
    n, changed = 24, 5
    source = write_pairs(tmp_path / "pairs.parquet", synthetic_pairs(n))
    root = make_project(tmp_path / "project", source, {"base_urls": [judge.url], "concurrency": 4})
    prefclean(root, "--no-tests")
    assert judge.stats()["requests"] == n
    judge.reset()

    # Replace the first rows with edited text for which the judge prefers `rejected` (planted ratings swapped;
    # ids from 1 avoid the label-noise and tie rows of synthetic_pairs).
    edited = synthetic_pairs(changed, start=1, variant="(edited) ")
    swap = {"chosen": edited["rejected"], "rejected": edited["chosen"]}
    edited = pa.table({"system": edited["system"], "question": edited["question"], **swap})
    write_pairs(source, pa.concat_tables([edited, synthetic_pairs(n).slice(changed)]))
    prefclean(root, "--no-tests")
    assert judge.stats()["requests"] == changed  # exactly the edited pairs, nothing else

    cleaned = pq.read_table(root / "target" / "exports" / "cleaned.parquet").to_pylist()
    prompts = {row["prompt"] for row in cleaned}
    assert not prompts & {q.as_py() for q in synthetic_pairs(changed)["question"]}  # old text is gone
    assert all(row["chosen_rating"] > row["rejected_rating"] for row in cleaned)
    assert len(cleaned) > 0
    # New judgments were used: every edited pair is now rated chosen 2 < rejected 4, so it is dropped.
    assert not [row for row in cleaned if row["prompt"].startswith("Question (edited) ")]


def test_formats_small(tmp_path):
    out = run_bench("formats.py", "--n", 300, "--work", tmp_path)
    for layout in ("hh-rlhf", "TRL conversational"):
        assert cell(out, f"{layout}: prefclean (DuckDB)").strip() and f"| {layout}: datasets.map" in out
        rows = re.findall(rf"^\| {re.escape(layout)}: (?:prefclean \(DuckDB\)|datasets\.map)\s*\|.*\| ([\d,]+)\s*\|$",
                          out, re.M)
        assert rows == ["300", "300"], out


def test_adaptive_concurrency_small(tmp_path):
    out = run_bench("adaptive_concurrency.py", "--n", 60, "--latency-ms", 20, "--capacity", 4, "--reject-above", 6,
                    "--fixed", "4", "--repeats", 1, "--work", tmp_path)
    rows = dict(re.findall(r"^\| (4|auto) +\| ([\d.]+) ", out, re.M))
    assert set(rows) == {"4", "auto"} and all(float(v) > 0 for v in rows.values()), out
    assert "best fixed: 4" in out and "CHECK FAILED" not in out


def test_cost_small():
    out = run_bench("cost.py", "--n", 40, "--margins", "0,1")
    assert "bias check true: 80 requests" in out
    sent = {(k, d): int(n.replace(",", ""))
            for k, d, n in re.findall(r"^\| ([01])\s*\| (auto|both)\s*\| ([\d,]+)\s*\|", out, re.M)}
    assert len(sent) == 4, out
    assert 40 <= sent["0", "auto"] <= sent["1", "auto"] <= 80  # a wider margin re-checks at least as many pairs
    assert all(sent[k, "auto"] <= sent[k, "both"] for k in "01")  # leaning on the tilt never re-checks more
    assert "ratings only + structured, one pass" in out


def test_budget_tokens_small():
    pytest.importorskip("tokenizers")
    out = run_bench("budget_tokens.py", "--n", 120, "--concurrency", 8, "--repeat", 20)
    rows = re.findall(r"^\| (tokenizer\.json|GGUF vocabulary) +\| 120 +\| [\d,]+ +\| ([\d,]+) +\| ([\d,]+) +\|", out, re.M)
    assert rows and all(sent == every for _, sent, every in rows), out  # stopped where counting every prompt stops
