"""A judgment cache that cannot be used (held by another process, or damaged) fails the judging model with one
line saying what to do, and everything built before stays: tables, exports, the cache itself."""

from __future__ import annotations

import shlex
import subprocess
import sys

import yaml

from judge_fixtures import build, copy_example, judged

PAIRS = [{"system": "", "instruction": f"question {i}", "chosen": f"good answer {i} [[rate=5]]",
          "rejected": f"poor answer {i} [[rate=2]]"} for i in range(6)]


def built_example(tmp_path, run_cli, server):
    root = copy_example(tmp_path, server, rows=PAIRS, vars={"check_position_bias": False})
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["exports"] = {"cleaned": {"model": "cleaned_pairs", "target": "parquet",
                                     "path": "target/exports/cleaned.parquet"}}
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    build(run_cli, root)
    return root


def snapshot(root):
    return {"export": (root / "target" / "exports" / "cleaned.parquet").read_bytes(),
            "judged": judged(root, "select pair_id, judged_with, judgments[1].ratings as r from judged_pairs order by 1"),
            "decisions": judged(root, "select pair_id, decision from pair_decisions order by 1"),
            "cleaned": judged(root, "select count(*) as n from cleaned_pairs")}


def failed_build(run_cli, root, server):
    server.reset()
    result, _ = build(run_cli, root, "--full-refresh", ok=False)
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    [line] = [line for line in result.output.splitlines() if " ERROR " in line]
    assert "judged_pairs" in line
    assert "SKIP" in result.output and "cleaned_pairs" in result.output  # its dependents did not run
    assert server.stats()["requests"] == 0
    return line


def test_a_cache_held_by_another_process_names_it_and_changes_nothing(tmp_path, run_cli, fake_judge):
    root = built_example(tmp_path, run_cli, fake_judge)
    before = snapshot(root)
    cache = root / "target" / "judgments.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('holding', flush=True); time.sleep(120)", str(cache)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        line = failed_build(run_cli, root, fake_judge)
        assert f"the judgment cache {cache} is in use by another process (PID {holder.pid}," in line
        assert "wait for it to finish or stop it" in line
        assert snapshot(root) == before
    finally:
        holder.kill()
        holder.wait()
    fake_judge.reset()
    build(run_cli, root, "--full-refresh")  # once it is free, the cache answers everything again
    assert fake_judge.stats()["requests"] == 0


def test_a_damaged_cache_says_so_and_how_to_move_it_aside(tmp_path, run_cli, fake_judge):
    root = built_example(tmp_path, run_cli, fake_judge)
    before = snapshot(root)
    cache = root / "target" / "judgments.duckdb"
    data = cache.read_bytes()
    cache.write_bytes(data[:5000])  # truncated: the header is there, the rest is not
    line = failed_build(run_cli, root, fake_judge)
    assert f"the judgment cache {cache} cannot be read" in line and "damaged or not a DuckDB file" in line
    assert snapshot(root) == before
    cache.write_bytes(b"not a database at all " * 300)  # not a DuckDB file
    line = failed_build(run_cli, root, fake_judge)
    assert snapshot(root) == before
    command = line.split("move it aside (")[1].split(")")[0]
    assert command.startswith("mv ")
    subprocess.run(shlex.split(command), check=True)  # the advice works as printed
    assert (root / "target" / "judgments.duckdb.broken").exists()
    fake_judge.reset()
    build(run_cli, root)
    assert fake_judge.stats()["requests"] == 0  # the tables were kept: nothing needs judging
    build(run_cli, root, "--full-refresh")
    assert fake_judge.stats()["requests"] == 6  # a new, empty cache
