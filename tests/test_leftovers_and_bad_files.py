"""What a killed run leaves is removed by the next one; a file that is not a warehouse is a user error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from prefclean.errors import EXIT_USER_ERROR

ROWS = [{"id": i} for i in range(3)]
CONFIG = {"sources": {"s": {"type": "inline", "rows": ROWS}},
          "exports": {"out": {"model": "m", "target": "parquet", "path": "target/exports/m.parquet"}}}
MODEL = {"m": "{{ config(materialized='table') }} select * from {{ source('s') }}"}


def test_leftover_export_temp_files_and_side_tables_are_removed_by_the_next_build(make_project, run_cli, query):
    root = make_project(config=CONFIG, models=MODEL)
    assert run_cli("build", cwd=root).exit_code == 0
    exports = root / "target" / "exports"
    left = [exports / ".m.parquet.0123abcd.tmp", exports / ".m.parquet.deadbeef.tmp"]
    left.append(root / "target" / "summary.jsonk3_9xq2a.tmp")  # write_json_atomic's, killed mid-write
    kept = [exports / ".m.parquet.notes.tmp", exports / ".other.parquet.0123abcd.tmp", exports / "m.parquet.bak",
            root / "target" / "notes.json12345678.tmp"]
    for path in left + kept:
        path.write_bytes(b"PAR1 half written")
    con = duckdb.connect(str(root / "target" / "prefclean.duckdb"))
    con.execute("create table main.gone__prefclean_tmp as select 1 as x")
    con.execute("create table sources.s__prefclean_tmp as select 1 as x")
    con.execute("create table main.m__prefclean_new as select 1 as x")
    con.execute("create table main.users_table as select 1 as x")
    con.close()

    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert "removed what an interrupted run left: main.gone__prefclean_tmp" in result.output
    assert not any(p.exists() for p in left) and all(p.exists() for p in kept)
    tables = {r[0] for r in query(root, "select schema_name || '.' || table_name from duckdb_tables()")}
    assert not any("__prefclean" in t for t in tables) and "main.users_table" in tables


def test_an_export_killed_mid_write_leaves_nothing_after_the_next_export(make_project, run_cli, tmp_path):
    """A real SIGKILL while DuckDB writes the temporary file; the next `prefclean export` cleans it."""
    big = {"sources": {"s": {"type": "parquet", "path": "big.parquet"}},
           "exports": {"out": {"model": "m", "target": "csv", "path": "target/exports/m.csv"}}}
    root = make_project(config=big, models=MODEL)
    con = duckdb.connect()
    con.execute(f"copy (select range as id, md5(range::varchar) || repeat('x', 200) as t from range(1000000)) "
                f"to '{root / 'big.parquet'}'")
    con.close()
    assert run_cli("build", "--no-exports", cwd=root).exit_code == 0
    exports = root / "target" / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    for path in exports.iterdir():
        path.unlink()
    proc = subprocess.Popen([sys.executable, "-m", "prefclean.cli", "export", "out"], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.endswith(".tmp") for p in exports.iterdir()):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    tmp = [p for p in exports.iterdir() if p.name.endswith(".tmp")]
    if not tmp:
        pytest.skip("the export finished before it could be killed")
    result = run_cli("export", "out", cwd=root)
    assert result.exit_code == 0, result
    assert sorted(p.name for p in exports.iterdir()) == ["m.csv"]


@pytest.mark.parametrize("content", [b"", b"hello, I am not a database\n", os.urandom(20000)])
@pytest.mark.parametrize("command", [["build"], ["export"], ["sql", "--write", "select 1"]])
def test_a_file_that_is_not_a_warehouse_is_one_line_and_exit_2(make_project, run_cli, content, command):
    root = make_project(config=CONFIG, models=MODEL)
    (root / "target").mkdir()
    (root / "target" / "prefclean.duckdb").write_bytes(content)
    result = run_cli(*command, cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"error: cannot open the warehouse {root / 'target' / 'prefclean.duckdb'}: The file "
        f"\"{root / 'target' / 'prefclean.duckdb'}\" exists, but it is not a valid DuckDB database file!; move the file "
        "aside (or delete it) and `prefclean build` makes a new one"]


@pytest.mark.parametrize("fraction", [0.002, 0.25, 0.9])
def test_a_truncated_warehouse_is_a_one_line_error_never_an_internal_one(make_project, run_cli, fraction):
    rows = [{"id": i, "text": f"row {i} " + "x" * 500} for i in range(1500)]
    root = make_project(config={"sources": {"s": {"type": "inline", "rows": rows}}}, models=MODEL)
    assert run_cli("build", cwd=root).exit_code == 0
    path = root / "target" / "prefclean.duckdb"
    with open(path, "r+b") as f:
        f.truncate(int(path.stat().st_size * fraction))
    result = run_cli("build", cwd=root)
    assert result.exit_code in (0, 1, 2), result  # 1: a model that reads a lost block fails, with its message
    assert "internal error" not in result.output and "Traceback" not in result.output
    if result.exit_code == 2:
        assert str(path) in result.output and "move" in result.output


def test_a_warehouse_or_export_path_through_a_file_is_one_line_not_an_internal_error(make_project, run_cli):
    root = make_project(config={**CONFIG, "warehouse": "prefclean.yml/w.duckdb"}, models=MODEL)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR and "internal error" not in result.output, result
    assert f"cannot make the warehouse's folder {root / 'prefclean.yml'}: File exists" in result.output
    exports = {"e": {"model": "m", "target": "jsonl", "path": "prefclean.yml/m.jsonl"}}
    root = make_project(config={**CONFIG, "exports": exports}, models=MODEL, dirname="with_export")
    result = run_cli("build", cwd=root)
    assert result.exit_code == 1 and "internal error" not in result.output, result
    assert f"cannot make the export's folder {root / 'prefclean.yml'}: File exists" in result.output
