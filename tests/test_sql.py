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


# ---- Jinja in a query is sandboxed ----------------------------------------------------------------------

def _ssti_payloads(marker: Path) -> list[str]:
    """Known ways out of a plain jinja2.Environment; each would create `marker` if it ran."""
    cmd = f"touch {marker}"
    return [
        f"select '{{{{ cycler.__init__.__globals__.os.popen('{cmd}').read() }}}}'",
        f"select '{{{{ lipsum.__globals__['os'].popen('{cmd}').read() }}}}'",
        f"select '{{{{ joiner.__init__.__globals__.os.system('{cmd}') }}}}'",
        f"select '{{{{ ref.__globals__['__builtins__']['__import__']('os').system('{cmd}') }}}}'",
        "select '{{ ''.__class__.__mro__[1].__subclasses__() }}'",
        f"select '{{{{ self.__init__.__globals__.__builtins__.__import__('os').system('{cmd}') }}}}'",
        f"select '{{{{ namespace.__init__.__globals__.os.system('{cmd}') }}}}'",
        "select '{{ var('min_id').__class__.__base__.__subclasses__() }}'",
        "select '{{ '{0.__globals__}'.format(ref) }}'",
    ]


def test_jinja_in_a_query_cannot_reach_python(built, run_cli, tmp_path):
    marker = tmp_path / "pwned"
    for payload in _ssti_payloads(marker):
        result = run_cli("sql", payload, cwd=built)
        assert result.exit_code == EXIT_USER_ERROR, (payload, result)
        assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1, result
        assert not marker.exists(), payload
    refused = run_cli("sql", "select '{{ ref.__globals__ }}'", cwd=built)
    assert "refused: the query's Jinja tried something the sandbox forbids" in refused.output
    # only ref, source and var are in scope: no macros, no Python helpers, no range
    for name in ("range(3)", "dict(a=1)", "judge", "config(materialized='table')", "project_vars"):
        result = run_cli("sql", f"select '{{{{ {name} }}}}'", cwd=built)
        assert result.exit_code == EXIT_USER_ERROR and "is undefined" in result.output, (name, result)


def test_a_template_that_renders_to_nothing_is_an_error_not_ok(built, run_cli):
    result = run_cli("sql", "{% set x = ref.__dict__ %}", cwd=built)  # an unsafe value never used: renders ''
    assert result.exit_code == EXIT_USER_ERROR and "renders to empty SQL" in result.output, result


def test_a_template_too_big_for_memory_is_refused(built, run_cli):
    result = run_cli("sql", "select {{ ('x' * 600000000) | length }}", cwd=built)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "needed more memory than a query may use" in result.output


def test_a_template_that_never_ends_is_stopped_at_its_deadline(built):
    endless = "select {% for a in 'x' * 100000 %}{% for b in 'y' * 100000 %}{% endfor %}{% endfor %} 1"
    start = time.monotonic()
    proc = _prefclean(["sql", endless], built)
    try:
        out = proc.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("rendering the template was never stopped")
    assert proc.returncode == EXIT_USER_ERROR, out
    assert "took longer than 5s to render" in out and time.monotonic() - start < 30


def test_a_build_while_a_sql_session_is_open_names_that_session(built, run_cli):
    proc = _prefclean(["sql"], built, stdin=subprocess.PIPE)
    try:
        _wait_until_open(proc, "prefclean.duckdb")
        result = run_cli("build", cwd=built)
    finally:
        proc.communicate(".quit\n", timeout=20)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert f"a `prefclean sql` session (PID {proc.pid}) has it open; leave that prompt (.quit)" in result.output
