"""`prefclean sql`: ad-hoc queries against the warehouse, read-only unless --write."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from prefclean.errors import EXIT_OK, EXIT_USER_ERROR

MODELS = {
    "pairs": "{{ config(materialized='table') }}\n"
             "select * from (values (1, 'a|b', ['x', 'y']), (2, 'c', ['z'])) t(id, text, tags)",
    "words": "select id, n_words(text) as n from {{ ref('pairs') }}",  # a view calling a project UDF
}
UDF = ("import pyarrow.compute as pc\nfrom prefclean import udf\n\n@udf(params=['VARCHAR'], returns='BIGINT')\n"
       "def n_words(texts):\n    return pc.list_value_length(pc.split_pattern(texts, '|')).cast('int64')\n")


@pytest.fixture
def built(make_project, run_cli):
    root = make_project(models=MODELS, udfs={"text": UDF}, config={"vars": {"min_id": 2}})
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    return root


def test_table_output(built, run_cli):
    result = run_cli("sql", "select id, text from pairs order by id", cwd=built)
    assert result.exit_code == EXIT_OK, result
    assert "id" in result.output and "a|b" in result.output and "│" in result.output
    many = run_cli("sql", "select range from range(100)", cwd=built)
    assert "(100 rows, 40 shown)" in many.output


def test_csv_json_markdown(built, run_cli):
    csv = run_cli("sql", "select id, text, tags from pairs order by id", "--format", "csv", cwd=built)
    assert csv.exit_code == EXIT_OK, csv
    lines = csv.output.splitlines()
    assert lines[0] == "id,text,tags" and lines[1].startswith("1,a|b,") and "x" in lines[1]
    js = run_cli("sql", "select id, text, tags from pairs order by id", "--format", "json", cwd=built)
    assert [json.loads(line) for line in js.output.splitlines()] == [
        {"id": 1, "text": "a|b", "tags": ["x", "y"]}, {"id": 2, "text": "c", "tags": ["z"]}]
    md = run_cli("sql", "select id, text from pairs order by id", "--format", "markdown", cwd=built)
    assert md.output.splitlines() == ["| id | text |", "|---|---|", "| 1 | a\\|b |", "| 2 | c |"]


def test_output_files(built, run_cli, tmp_path):
    out = tmp_path / "out" / "result.parquet"
    result = run_cli("sql", "select * from pairs", "-o", out, cwd=built)
    assert result.exit_code == EXIT_OK, result
    assert f"wrote 2 rows to {out}" in result.output
    assert duckdb.sql(f"select count(*), list(id order by id) from '{out}'").fetchall() == [(2, [1, 2])]
    assert duckdb.sql(f"select distinct compression from parquet_metadata('{out}')").fetchall() == [("ZSTD",)]
    csv = tmp_path / "r.csv"
    assert run_cli("sql", "select id, tags from pairs", "-o", csv, cwd=built).exit_code == EXIT_OK
    assert csv.read_text().splitlines()[0] == "id,tags"
    bad = run_cli("sql", "select 1", "-o", tmp_path / "r.xlsx", cwd=built)
    assert bad.exit_code == EXIT_USER_ERROR and "use a .parquet, .csv or .jsonl file name" in bad.output


def test_ref_source_var_and_udf_views_resolve(built, run_cli):
    result = run_cli("sql", "select id from {{ ref('pairs') }} where id >= {{ var('min_id') }}", "--format", "csv",
                     cwd=built)
    assert result.exit_code == EXIT_OK, result
    assert result.output.split() == ["id", "2"]
    views = run_cli("sql", "select n from words order by id", "--format", "csv", cwd=built)
    assert views.output.split() == ["n", "2", "1"], views
    unknown = run_cli("sql", "select * from {{ ref('pair') }}", cwd=built)
    assert unknown.exit_code == EXIT_USER_ERROR and "ref('pair') names no model; did you mean 'pairs'?" in unknown.output


def test_writes_refused_without_write_flag(built, run_cli, query):
    result = run_cli("sql", "create table scratch as select 1 as x", cwd=built)
    assert result.exit_code == EXIT_USER_ERROR
    assert "refused" in result.output and "read-only" in result.output and "--write" in result.output
    assert "Traceback" not in result.output
    result = run_cli("sql", "delete from pairs", cwd=built)
    assert result.exit_code == EXIT_USER_ERROR and "--write" in result.output
    assert query(built, "select count(*) from pairs") == [(2,)]

    result = run_cli("sql", "create table scratch as select 1 as x", "--write", cwd=built)
    assert result.exit_code == EXIT_OK, result
    assert query(built, "select x from scratch") == [(1,)]


@pytest.mark.parametrize("statement", [
    "attach '{other}' as other",
    "copy (select 1 as x) to '{tmp}/leak.csv'",
    "select * from read_csv('{tmp}/data.csv')",
    "select * from '{tmp}/data.csv'",
    "set enable_external_access = true",
])
def test_file_and_attach_access_refused(built, run_cli, tmp_path, statement):
    (tmp_path / "data.csv").write_text("a\n1\n")
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    result = run_cli("sql", statement.format(other=other, tmp=tmp_path), cwd=built)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert result.output.startswith("error: refused: this connection is read-only"), result
    assert not (tmp_path / "leak.csv").exists()


def test_sql_error_is_one_line(built, run_cli):
    result = run_cli("sql", "select * from nowhere", cwd=built)
    assert result.exit_code == EXIT_USER_ERROR
    assert result.output.startswith("error: Catalog Error") and len(result.output.strip().splitlines()) == 1


def test_no_warehouse_yet(make_project, run_cli):
    root = make_project(models={"m": "select 1"})
    result = run_cli("sql", "select 1", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR and "run `prefclean build` first" in result.output


def test_interactive_prompt(built, run_cli):
    result = run_cli("sql", "--format", "csv", cwd=built,
                     input="select count(*) as n\nfrom pairs;\nselect * from nowhere;\nselect 7 as seven;\n.quit\n")
    assert result.exit_code == EXIT_OK, result
    assert "n\n2" in result.output and "error: Catalog Error" in result.output and "seven\n7" in result.output




def _prefclean(args, cwd, **kw) -> subprocess.Popen:
    exe = shutil.which("prefclean") or str(Path(sys.executable).with_name("prefclean"))
    return subprocess.Popen([exe, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _wait_until_open(proc, name: str, timeout: float = 30) -> None:
    """Wait until the process has the warehouse open (Linux /proc), so Ctrl-C lands on the query, not on imports."""
    fds = Path(f"/proc/{proc.pid}/fd")
    deadline = time.monotonic() + timeout
    while fds.exists() and time.monotonic() < deadline:
        try:
            if any(os.readlink(fd).endswith(name) for fd in fds.iterdir()):
                return
        except OSError:
            pass
        time.sleep(0.05)


def _interrupt(proc, *, after: float, then_input: str | None = None) -> str:
    _wait_until_open(proc, "prefclean.duckdb")
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(then_input, timeout=20)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("Ctrl-C did not stop the query")


SLOW = "select count(*) from range(1000000000000) t1"


def test_ctrl_c_interrupts_a_query(built):
    proc = _prefclean(["sql", SLOW], built)
    out = _interrupt(proc, after=1)
    assert proc.returncode == 130, out
    assert "query interrupted" in out and "Resource In Use" not in out


def test_ctrl_c_in_the_prompt_keeps_the_shell(built):
    proc = _prefclean(["sql", "--format", "csv"], built, stdin=subprocess.PIPE)
    assert proc.stdout.readline().startswith("prefclean sql:")  # the prompt is up
    proc.stdin.write(SLOW + ";\n")
    proc.stdin.flush()
    out = _interrupt(proc, after=1, then_input="select 41 + 1 as answer;\n")
    assert proc.returncode == 0, out
    assert "error: query interrupted" in out and "answer\n42" in out


def _in_terminal(root, keys: list[bytes], timeout: float = 30) -> str:
    """Run `prefclean sql` on a real pseudo-terminal, type `keys` one line at a time, return what it showed."""
    import pty
    import select

    primary, secondary = pty.openpty()
    exe = shutil.which("prefclean") or str(Path(sys.executable).with_name("prefclean"))
    proc = subprocess.Popen([exe, "sql", "--format", "csv"], cwd=root, stdin=secondary, stdout=secondary,
                            stderr=secondary, close_fds=True, env={**os.environ, "TERM": "xterm"})
    os.close(secondary)
    shown = b""

    def read_until(marker: bytes) -> None:
        nonlocal shown
        deadline = time.monotonic() + timeout
        while marker not in shown and time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.2)
            if ready:
                try:
                    shown += os.read(primary, 4096)
                except OSError:
                    return

    try:
        for key in keys:
            read_until(b"sql> ")
            shown = shown.replace(b"sql> ", b"<prompt>", 1)
            os.write(primary, key)
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    return shown.decode("utf-8", "replace")


def test_the_prompt_in_a_real_terminal_keeps_history(built):
    first = _in_terminal(built, [b"select 40 + 2 as answer;\r", b".quit\r"])
    assert "answer" in first and "42" in first
    assert "select 40 + 2 as answer;" in (built / "target" / ".sql_history").read_text()
    # a new session: up arrow twice (past `.quit`) brings the statement back, Enter runs it again
    again = _in_terminal(built, [b"\x1b[A\x1b[A\r", b".quit\r"])
    assert again.count("42") >= 1 and "answer" in again
