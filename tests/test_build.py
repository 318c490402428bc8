"""`prefclean build`: materializations, incremental merges, atomic failures, artifacts, UDFs, init."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import duckdb
import pytest
import yaml
from judge_fixtures import judge_config

from prefclean.errors import EXIT_FAILED, EXIT_OK, EXIT_USER_ERROR


def _rows(n: int, text: str = "v") -> list[dict]:
    return [{"id": i, "text": f"{text}{i}"} for i in range(n)]


def _config(rows, **extra) -> dict:
    return {"sources": {"s": {"rows": rows}}, **extra}


def _set_rows(root, rows, **extra) -> None:
    import yaml

    (root / "prefclean.yml").write_text(yaml.safe_dump({"name": "proj", **_config(rows, **extra)}))



def test_materializations(make_project, run_cli, query, relation_type):
    root = make_project(config=_config(_rows(4)), models={
        "v": "select * from {{ source('s') }}",
        "t": "{{ config(materialized='table') }} select * from {{ ref('v') }}",
        "e": "{{ config(materialized='ephemeral') }} select id from {{ ref('t') }} where id > 1",
        "i": "{{ config(materialized='incremental', unique_key='id') }} select * from {{ ref('e') }}",
    })
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert (relation_type(root, "v"), relation_type(root, "t"), relation_type(root, "e"), relation_type(root, "i")) == \
        ("VIEW", "BASE TABLE", None, "BASE TABLE")
    assert query(root, "select count(*) from i") == [(2,)]
    lines = [line for line in result.output.splitlines() if re.match(r"\d+ of \d+ ", line)]
    assert len(lines) == 4
    assert re.fullmatch(r"2 of 4 OK table t \.\.\. 4 rows in \d+\.\d\ds", lines[1]), lines
    # a view is not counted: counting runs its query, and a view over judge() would judge every row
    assert re.fullmatch(r"1 of 4 OK view v \.\.\. done in \d+\.\d\ds", lines[0]), lines


def test_switching_materialization_replaces_relation(make_project, run_cli, query, relation_type):
    root = make_project(config=_config(_rows(2)), models={"m": "select * from {{ source('s') }}"})
    assert run_cli("build", cwd=root).exit_code == 0
    assert relation_type(root, "m") == "VIEW"
    (root / "models/m.sql").write_text("{{ config(materialized='table') }} select * from {{ source('s') }}")
    assert run_cli("build", cwd=root).exit_code == 0
    assert relation_type(root, "m") == "BASE TABLE"
    (root / "models/m.sql").write_text("select 1 as one")
    assert run_cli("build", cwd=root).exit_code == 0
    assert relation_type(root, "m") == "VIEW" and query(root, "select * from m") == [(1,)]


INCREMENTAL = """{{ config(materialized='incremental', unique_key='id') }}
select id, text, '{{ var('version') }}' as version from {{ source('s') }}
{% if is_incremental() %}
where id not in (select id from {{ this }}) or text not in (select text from {{ this }})
{% endif %}
"""


def test_incremental_updates_instead_of_duplicating(make_project, run_cli, query):
    root = make_project(config=_config(_rows(3), vars={"version": "v1"}), models={"inc": INCREMENTAL})
    assert run_cli("build", cwd=root).exit_code == 0
    assert query(root, "select id, text, version from inc order by id") == [
        (0, "v0", "v1"), (1, "v1", "v1"), (2, "v2", "v1")]

    rows = _rows(4)
    rows[1]["text"] = "changed"
    _set_rows(root, rows, vars={"version": "v2"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    # new key 3 inserted, changed key 1 replaced, unchanged rows 0 and 2 not recomputed (still v1)
    assert query(root, "select id, text, version from inc order by id") == [
        (0, "v0", "v1"), (1, "changed", "v2"), (2, "v2", "v1"), (3, "v3", "v2")]
    compiled = (root / "target/compiled/models/inc.sql").read_text()
    assert 'where id not in (select id from "main"."inc")' in compiled

    assert run_cli("build", "--full-refresh", cwd=root).exit_code == 0
    assert query(root, "select count(*), min(version) from inc") == [(4, "v2")]


def test_incremental_with_composite_key(make_project, run_cli, query):
    model = ("{{ config(materialized='incremental', unique_key=['a', 'b']) }}\n"
             "select a, b, v from {{ source('s') }}")
    root = make_project(config=_config([{"a": 1, "b": "x", "v": 1}, {"a": 1, "b": "y", "v": 1}]), models={"m": model})
    assert run_cli("build", cwd=root).exit_code == 0
    _set_rows(root, [{"a": 1, "b": "x", "v": 2}, {"a": 2, "b": "x", "v": 2}])
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select a, b, v from m order by a, b") == [(1, "x", 2), (1, "y", 1), (2, "x", 2)]


def test_incremental_without_key_appends(make_project, run_cli, query):
    model = ("{{ config(materialized='incremental') }}\nselect id from {{ source('s') }}\n"
             "{% if is_incremental() %}where id > (select max(id) from {{ this }}){% endif %}")
    root = make_project(config=_config(_rows(2)), models={"m": model})
    assert run_cli("build", cwd=root).exit_code == 0
    _set_rows(root, _rows(5))
    assert run_cli("build", cwd=root).exit_code == 0
    assert query(root, "select list(id order by id) from m") == [([0, 1, 2, 3, 4],)]


def test_failing_model_skips_dependents_and_other_branches_build(make_project, run_cli, query):
    root = make_project(config=_config(_rows(3)), models={
        "base": "{{ config(materialized='table') }} select * from {{ source('s') }}",
        "broken": "{{ config(materialized='table') }} select no_such_column from {{ ref('base') }}",
        "after_broken": "select * from {{ ref('broken') }}",
        "fine": "{{ config(materialized='table') }} select count(*) as n from {{ ref('base') }}",
    })
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    out = result.output
    assert "ERROR table broken: model 'broken' failed:" in out
    assert "no_such_column" in out and "compiled SQL: target/compiled/models/broken.sql" in out
    assert "SKIP view after_broken (upstream broken failed)" in out
    assert re.search(r"OK table fine \.\.\. 1 rows", out)
    assert query(root, "select n from fine") == [(3,)]
    assert "Traceback" not in out

    results = json.loads((root / "target/run_results.json").read_text())
    status = {r["model"]: r["status"] for r in results["results"]}
    assert status == {"base": "success", "broken": "error", "after_broken": "skipped", "fine": "success"}
    runs = query(root, "select model, status from _prefclean.model_runs order by model")
    assert ("broken", "error") in runs and ("after_broken", "skipped") in runs


def test_failed_rebuild_keeps_previous_version(make_project, run_cli, query):
    root = make_project(config=_config(_rows(3)), models={
        "t": "{{ config(materialized='table') }} select id, text from {{ source('s') }}",
        "v": "select id from {{ source('s') }}",
        "i": "{{ config(materialized='incremental', unique_key='id') }} select id from {{ source('s') }}",
    })
    assert run_cli("build", cwd=root).exit_code == 0
    # Each fails at run time (a cast error), not at compile time.
    (root / "models/t.sql").write_text("{{ config(materialized='table') }} "
                                       "select id, text::integer as text from {{ source('s') }}")
    (root / "models/v.sql").write_text("select id, nope from {{ source('s') }}")
    (root / "models/i.sql").write_text("{{ config(materialized='incremental', unique_key='id') }} "
                                       "select id from {{ source('s') }} where text::integer > 0")
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert query(root, "select id, text from t order by id") == [(0, "v0"), (1, "v1"), (2, "v2")]
    assert query(root, "select count(*) from v") == [(3,)]
    assert query(root, "select count(*) from i") == [(3,)]
    leftovers = query(root, "select table_name from information_schema.tables where table_name like '%prefclean%'")
    assert leftovers == []


def test_exit_codes(make_project, run_cli):
    ok = make_project(models={"m": "select 1 as x"})
    assert run_cli("build", cwd=ok).exit_code == EXIT_OK
    user = make_project(models={"m": "select * from {{ ref('nope') }}"})
    assert run_cli("build", cwd=user).exit_code == EXIT_USER_ERROR
    failed = make_project(models={"m": "select * from nowhere"})
    assert run_cli("build", cwd=failed).exit_code == EXIT_FAILED


def test_manifest_and_run_results(make_project, run_cli):
    root = make_project(config=_config(_rows(5)), models={
        "a": "{{ config(materialized='table') }} select * from {{ source('s') }}",
        "b": "select count(*) as n from {{ ref('a') }}",
    })
    assert run_cli("build", cwd=root).exit_code == 0
    manifest = json.loads((root / "target/manifest.json").read_text())
    assert manifest["order"] == ["a", "b"]
    a, b = manifest["models"]["a"], manifest["models"]["b"]
    assert a["materialized"] == "table" and a["depends_on"] == {"models": [], "sources": ["s"], "macros": []}
    assert b["depends_on"] == {"models": ["a"], "sources": [], "macros": []} and b["path"] == "models/b.sql"
    assert len(a["checksum"]) == 64 and a["checksum"] != b["checksum"]
    results = json.loads((root / "target/run_results.json").read_text())
    assert results["command"] == "build" and results["elapsed_seconds"] >= 0
    by_model = {r["model"]: r for r in results["results"]}
    assert by_model["a"]["status"] == "success" and by_model["a"]["rows"] == 5
    assert by_model["b"]["rows"] is None and by_model["b"]["seconds"] >= 0  # a view: not counted

    (root / "models/b.sql").write_text("select count(*) + 1 as n from {{ ref('a') }}")
    assert run_cli("build", cwd=root).exit_code == 0
    again = json.loads((root / "target/manifest.json").read_text())
    assert again["models"]["b"]["checksum"] != b["checksum"] and again["models"]["a"]["checksum"] == a["checksum"]


def test_project_udf_in_a_model(make_project, run_cli, query):
    root = make_project(
        config=_config([{"id": 1, "text": "one two three"}, {"id": 2, "text": None}]),
        udfs={"text": "import pyarrow.compute as pc\nfrom prefclean import udf\n\n"
                      "@udf(params=['VARCHAR'], returns='BIGINT')\n"
                      "def n_words(texts):\n    return pc.list_value_length(pc.utf8_split_whitespace(texts)).cast('int64')\n"},
        models={"m": "{{ config(materialized='table') }} select id, n_words(text) as words from {{ source('s') }}"},
    )
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select id, words from m order by id") == [(1, 3), (2, None)]


WARMING_UDF = """
import threading
from pathlib import Path

import pyarrow.compute as pc
from prefclean import udf


def prepare(ctx):
    (ctx.project.root / "warmed").write_text(threading.current_thread().name)
    if (ctx.project.root / "fail-warm-up").exists():
        raise RuntimeError("warm-up broke")


@udf(params=["BIGINT"], returns="BIGINT", warm_up=prepare, called_via=("twice_of",))
def doubled(xs):
    return pc.multiply(xs, 2)
"""


@pytest.mark.parametrize("model, warmed", [
    ("select doubled(range) as x from range(3)", True),  # called by name
    ("select range * 2 as x from range(3)", False),  # never called: no warm-up
])
def test_udf_warm_up_runs_in_the_background_when_a_model_calls_it(make_project, run_cli, query, model, warmed):
    root = make_project(udfs={"doubling": WARMING_UDF}, models={"m": "{{ config(materialized='table') }} " + model})
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select sum(x) from m") == [(6,)]
    if warmed:
        deadline = time.monotonic() + 10
        while not (root / "warmed").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (root / "warmed").read_text() == "warm-up doubled"
    else:
        assert not (root / "warmed").exists()


def test_warm_up_also_starts_for_a_helper_that_writes_the_call(make_project, tmp_path):
    """The judge UDF is called through Jinja helpers (judge_panel, judge) whose text is not in the project."""
    import threading

    from prefclean.project import load_project
    from prefclean.udf import RunContext, UdfSpec, start_warm_ups

    root = make_project(models={"m": "select {{ judge_panel('instruction', 'generations') }} as j from t"})
    started, wrongly_started = threading.Event(), threading.Event()
    specs = [UdfSpec("prefclean_judge", None, (), "INTEGER", warm_up=lambda ctx: started.set(),
                     called_via=("judge_panel",)),
             UdfSpec("other", None, (), "INTEGER", warm_up=lambda ctx: wrongly_started.set())]
    start_warm_ups(specs, RunContext(project=load_project(root)))
    assert started.wait(10)
    assert not wrongly_started.wait(0.3)


def test_file_closers_run_in_a_thread_of_their_own_and_closing_waits_for_them(make_project):
    """The judgment cache's checkpoint (a file closer) goes on beside the end of the build (summary, exports, the
    warehouse's checkpoint): close(wait=False) returns while it runs, close() waits and raises what it raised."""
    import threading

    from prefclean.project import load_project
    from prefclean.udf import RunContext

    ctx = RunContext(project=load_project(make_project(models={"m": "select 1 as x"})))
    release, done = threading.Event(), []

    def file_closer():
        release.wait(10)
        done.append(threading.current_thread().name)
        raise OSError("disk full")

    ctx.file_closers.append(file_closer)
    ctx.closers.append(lambda: done.append("closer"))
    ctx.close(wait=False)
    assert done == ["closer"]  # the file closer is still waiting
    release.set()
    with pytest.raises(OSError, match="disk full"):
        ctx.close()
    assert done == ["closer", "prefclean-close"]
    ctx.close()  # nothing left to wait for


def test_a_failing_udf_warm_up_does_not_fail_the_build(make_project, run_cli, query):
    root = make_project(udfs={"doubling": WARMING_UDF}, files={"fail-warm-up": ""},
                        models={"m": "{{ config(materialized='table') }} select doubled(range) as x from range(3)"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0 and "warm-up broke" not in result.output, result
    assert query(root, "select sum(x) from m") == [(6,)]


def test_broken_udf_file_is_a_user_error(make_project, run_cli):
    root = make_project(udfs={"bad": "raise RuntimeError('boom')\n"}, models={"m": "select 1 as x"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert "udfs/bad.py: cannot import: RuntimeError: boom" in result.output


def test_init_then_build(tmp_path, run_cli, query, fake_judge):
    result = run_cli("init", "newproj", cwd=tmp_path)
    assert result.exit_code == 0, result
    root = tmp_path / "newproj"
    assert (root / "prefclean.yml").exists()
    # the scaffold judges with the smoke-test model; here the loopback judge stands in for it (fast)
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["judges"], config["vars"]["judges"] = {"fake": judge_config(fake_judge)}, ["fake"]
    (root / "prefclean.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    rows = query(root, "select instruction, generations, \"order\" from shuffled_pairs order by instruction")
    assert len(rows) == 2
    for _, generations, order in rows:
        assert sorted(order) == ["chosen", "rejected"] and len(generations) == 2
    again = run_cli("init", "newproj", cwd=tmp_path)
    assert again.exit_code == EXIT_USER_ERROR and "already has a prefclean.yml" in again.output


def test_build_after_compile_error_leaves_warehouse_usable(make_project, run_cli, query):
    """A build that fails to compile must not keep the warehouse open: the next command can read it."""
    root = make_project(models={"m": "{{ config(materialized='table') }} select 1 as x"})
    assert run_cli("build", cwd=root).exit_code == 0
    (root / "models/bad.sql").write_text("select {{ nope }}")
    assert run_cli("build", cwd=root).exit_code == EXIT_USER_ERROR
    result = run_cli("sql", "select x from m", "--format", "csv", cwd=root)
    assert result.exit_code == 0, result
    assert result.output.split() == ["x", "1"]


REPO = Path(__file__).resolve().parents[1]


def test_example_project_shuffle_is_seeded_balanced_and_order_independent(make_project, run_cli, query):
    """The shipped shuffle_pair()/pair_id() macros: same seed -> same order whatever the row order or threads."""
    macros = (REPO / "macros/shuffle.sql").read_text()
    model = ("{{ config(materialized='table') }}\n"
             "select id, {{ shuffle_pair('c', 'r', key=pair_id(['q', 'c', 'r']), seed=var('shuffle_seed')) }}\n"
             "from {{ source('pairs') }}")
    root = make_project(config={"vars": {"shuffle_seed": 42}, "sources": {"pairs": {"path": "pairs.parquet"}}},
                        macros={"shuffle": macros}, models={"shuffled": model})
    con = duckdb.connect()
    con.execute(f"copy (select range as id, 'question ' || range as q, 'good ' || range as c, 'bad ' || range as r "
                f"from range(4000)) to '{root / 'pairs.parquet'}'")
    assert run_cli("build", cwd=root).exit_code == 0
    first = dict(query(root, "select id, \"order\" from shuffled"))
    share = sum(o == ["chosen", "rejected"] for o in first.values()) / len(first)
    assert 0.45 < share < 0.55, share
    assert all(sorted(o) == ["chosen", "rejected"] for o in first.values())

    # Same rows in reverse order, rebuilt from scratch, and the compiled SQL run on 1 and 4 threads.
    con.execute(f"copy (select * from '{root / 'pairs.parquet'}' order by id desc) to '{root / 'rev.parquet'}'")
    shutil.move(root / "rev.parquet", root / "pairs.parquet")
    assert run_cli("build", "--full-refresh", cwd=root).exit_code == 0
    assert dict(query(root, "select id, \"order\" from shuffled")) == first
    compiled = (root / "target/compiled/models/shuffled.sql").read_text()
    db = duckdb.connect(str(root / "target/prefclean.duckdb"), read_only=True)
    for threads in (1, 4):
        db.execute(f"set threads = {threads}")
        assert dict(db.execute(f"select id, \"order\" from ({compiled}\n)").fetchall()) == first
    db.close()

    assert run_cli("build", "--vars", '{"shuffle_seed": 7}', cwd=root).exit_code == 0
    other = dict(query(root, "select id, \"order\" from shuffled"))
    changed = sum(other[k] != first[k] for k in first) / len(first)
    assert 0.4 < changed < 0.6, changed


def test_example_project_builds_offline(tmp_path, run_cli, query):
    root = tmp_path / "example"
    root.mkdir()
    for name in ("prefclean.yml", "models", "macros", "udfs", "data", "data_tests"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    result = run_cli("build", "--select", "+shuffled_pairs", "--no-exports", cwd=root)
    assert result.exit_code == 0, result
    lines = [json.loads(line) for line in (root / "data/orca_sample.jsonl").read_text().splitlines() if line.strip()]
    distinct = {(r.get("system") or "", r["question"], r["chosen"], r["rejected"]) for r in lines}
    assert query(root, "select count(*), count(distinct pair_id) from shuffled_pairs") == [(len(distinct), len(distinct))]
    assert query(root, "select count(*) from shuffled_pairs where generations[1] = chosen") != \
        query(root, "select count(*) from shuffled_pairs")


def test_init_never_overwrites_files(tmp_path, run_cli):
    (tmp_path / "mine/models").mkdir(parents=True)
    (tmp_path / "mine/models/stg_pairs.sql").write_text("select 'my work' as x")
    result = run_cli("init", "mine", cwd=tmp_path)
    assert result.exit_code == EXIT_USER_ERROR
    assert "stg_pairs.sql already exists" in result.output
    assert (tmp_path / "mine/models/stg_pairs.sql").read_text() == "select 'my work' as x"
    assert not (tmp_path / "mine/prefclean.yml").exists()


def test_target_dir_outside_the_project(make_project, run_cli, tmp_path):
    target = tmp_path / "elsewhere_target"
    root = make_project(config={"target_dir": str(target)}, models={"bad": "select * from nowhere"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert f"compiled SQL: {target / 'compiled/models/bad.sql'}" in result.output
    assert (target / "run_results.json").exists() and (target / "manifest.json").exists()
    compiled = run_cli("compile", cwd=root)
    assert compiled.exit_code == 0 and f"compiled {target / 'compiled/models/bad.sql'}" in compiled.output


def test_audit_model_summary(make_project, run_cli, query):
    rows = [{"id": 1, "decision": "keep", "reason": "judge_agrees"}, {"id": 2, "decision": "drop", "reason": "tie"},
            {"id": 3, "decision": "drop", "reason": "tie"}, {"id": 4, "decision": "flip", "reason": None},
            {"id": 5, "decision": None, "reason": None}]
    root = make_project(config=_config(rows), models={
        "audit": "{{ config(materialized='table', audit=true) }} select * from {{ source('s') }}"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert "Summary (audit): 5 pairs -> keep 1 (20%), flip 1 (20%), drop 2 (40%)" in result.output
    assert re.search(r"drop +tie +2", result.output)
    summary = json.loads((root / "target/summary.json").read_text())
    assert summary["pairs"] == 5 and summary["decisions"]["drop"] == 2
    assert query(root, "select count(*) from _prefclean.run_summaries") == [(1,)]
    assert json.loads((root / "target/run_results.json").read_text())["summary"]["model"] == "audit"


def test_udf_raising_fails_only_its_model(make_project, run_cli):
    root = make_project(
        udfs={"bad": "from prefclean import udf\n\n@udf(params=['BIGINT'], returns='BIGINT')\n"
                     "def explode(xs):\n    raise ValueError('cannot handle these rows')\n"},
        models={"m": "{{ config(materialized='table') }} select explode(range) as x from range(3)",
                "ok": "select 1 as one"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert "ERROR table m: model 'm' failed:" in result.output and "cannot handle these rows" in result.output
    assert "OK view ok" in result.output


def test_warehouse_locked_by_another_process(make_project, run_cli):
    import subprocess
    import sys

    root = make_project(models={"m": "select 1 as x"})
    assert run_cli("build", cwd=root).exit_code == 0
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('ready', flush=True); sys.stdin.read()", str(root / "target/prefclean.duckdb")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        result = run_cli("build", cwd=root)
    finally:
        holder.communicate("", timeout=30)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "the warehouse is in use by another process" in result.output and f"PID {holder.pid}" in result.output
