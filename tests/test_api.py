"""The Python API: prefclean.build/test/sql/export/compile return typed results and report typed events."""

from __future__ import annotations

import asyncio

import pyarrow as pa
import pytest
from judge_fixtures import REPO, copy_example, judge_config, judge_project

import prefclean
from prefclean.events import (BuildFinished, ExportFinished, JudgingPaused, JudgingProgress, ModelFinished,
                              ModelStarted, SourceStaged, SummaryReady, TestFinished)
from prefclean.reporter import lines


def row(i: int, chosen: int = 4, rejected: int = 2) -> dict:
    return {"id": i, "instruction": f"question {i}",
            "generations": [f"answer A{i} [[rate={chosen}]]", f"answer B{i} [[rate={rejected}]]"]}


SCHEMA = {"models": [{"name": "judged", "columns": [{"name": "id", "tests": [
    "not_null", "unique", {"accepted_range": {"min_value": 0, "max_value": 1, "severity": "warn"}}]}]}]}


@pytest.fixture
def judged_project(make_project, fake_judge):
    return judge_project(make_project, fake_judge, [row(i) for i in range(3)],
                         models={"judged": "{{ config(materialized='table') }}\nselect id, "
                                           "{{ judge('instruction', 'generations', judge='fake') }} as j\n"
                                           "from {{ source('pairs') }}",
                                 "counted": "select count(*) as n from {{ ref('judged') }}",
                                 "schema.yml": SCHEMA})


def test_build_returns_models_tests_and_judging_counts_as_typed_fields(judged_project):
    events = []
    result = prefclean.build(judged_project, reporter=events.append)
    assert isinstance(result, prefclean.BuildResult) and result.ok
    assert [(m.name, m.status, m.rows) for m in result.models] == [("judged", "success", 3), ("counted", "success", None)]
    judged = result.model("judged")
    assert judged.seconds > 0 and judged.error is None and judged.materialized == "table"
    assert [j.judge for j in judged.judges] == ["fake"]
    assert (judged.judging.judged, judged.judging.failed, judged.judging.cached) == (3, 0, 0)
    assert (result.judging.requests, result.judging.rows, result.judging.cached) == (3, 3, 0)
    assert result.judging.tokens == result.judging.prompt_tokens + result.judging.completion_tokens > 0
    assert {(t.name, t.status) for t in result.tests} == {
        ("not_null_judged_id", "pass"), ("unique_judged_id", "pass"), ("accepted_range_judged_id", "warn")}
    assert result.count("success") == 2 and result.summary is None

    kinds = [type(e) for e in events]
    assert kinds[0] is SourceStaged and kinds[-1] is BuildFinished and events[-1].result is result
    assert kinds.index(ModelStarted) < kinds.index(JudgingProgress) < kinds.index(JudgingPaused) \
        < kinds.index(ModelFinished) < kinds.index(TestFinished)
    progress = [e for e in events if isinstance(e, JudgingProgress)]
    assert progress[-1].done == progress[-1].total == 3 and progress[-1].judge == "fake"

    again = prefclean.build(judged_project, reporter=prefclean.quiet)
    assert (again.judging.cached, again.judging.requests) == (3, 0)
    assert again.model("judged").judging.cached == 3


def test_build_works_inside_a_running_event_loop_as_in_jupyter(judged_project, fake_judge):
    async def notebook_cell():
        assert asyncio.get_running_loop().is_running()
        return prefclean.build(judged_project, reporter=prefclean.quiet, refresh_judgments=True)

    result = asyncio.run(notebook_cell())
    assert result.ok and result.judging.judged == 3 and fake_judge.stats()["requests"] == 3


def test_a_failing_model_is_in_the_result_not_an_exception(make_project):
    root = make_project(models={"bad": "select * from nowhere", "after": "select * from {{ ref('bad') }}",
                                "fine": "select 1 as x"})
    result = prefclean.build(root, reporter=prefclean.quiet)
    assert not result.ok
    bad, after = result.model("bad"), result.model("after")
    assert bad.status == "error" and "nowhere" in bad.error and bad.compiled_path.endswith("bad.sql")
    assert after.status == "skipped" and after.blocked_by == ("bad",)
    assert result.model("fine").ok
    with pytest.raises(KeyError, match="no model 'nope'"):
        result.model("nope")


def test_a_user_mistake_raises_its_one_line_error(make_project):
    root = make_project(models={"stg": "select 1 as x"})
    with pytest.raises(prefclean.PrefcleanError, match="--select 'stgg' matches no model; did you mean 'stg'"):
        prefclean.build(root, select="stgg", reporter=prefclean.quiet)
    with pytest.raises(prefclean.PrefcleanError, match="--exclude 'sgt' matches no model; did you mean 'stg'"):
        prefclean.build(root, exclude=["sgt"], reporter=prefclean.quiet)


CHAIN = {"a": "select 1 as x", "b": "select * from {{ ref('a') }}", "c": "select * from {{ ref('b') }}",
         "d": "select 2 as y"}


def test_exclude_leaves_out_models_from_the_api_and_the_cli(make_project, run_cli):
    root = make_project(models=CHAIN)
    result = prefclean.build(root, exclude="b+", reporter=prefclean.quiet)
    assert [m.name for m in result.models] == ["a", "d"]
    result = prefclean.build(root, select="+c", exclude=["a"], reporter=prefclean.quiet)
    assert [m.name for m in result.models] == ["b", "c"]
    assert [m.name for m in prefclean.compile(root, exclude="a+", write=False)] == ["d"]
    out = run_cli("ls", "--exclude", "+b", cwd=root)
    assert out.exit_code == 0 and [line.split()[0] for line in out.output.splitlines()] == ["c", "d"], out
    out = run_cli("build", "-s", "a+", "--exclude", "c", cwd=root)
    assert out.exit_code == 0, out
    assert "1 of 2 OK view a" in out.output and "2 of 2 OK view b" in out.output and " c " not in out.output


def test_test_sql_and_export_from_python(make_project, tmp_path):
    root = make_project(
        config={"sources": {"s": {"type": "inline", "rows": [{"id": 1}, {"id": 1}, {"id": 2}]}},
                "exports": {"out": {"model": "m", "target": "parquet", "path": "out.parquet", "on_build": False}}},
        models={"m": "{{ config(materialized='table') }} select id from {{ source('s') }}",
                "schema.yml": {"models": [{"name": "m", "columns": [
                    {"name": "id", "tests": ["unique", "not_null"]}]}]}})
    built = prefclean.build(root, reporter=prefclean.quiet)
    assert not built.ok and built.exports == () and [t.status for t in built.tests if t.failed] == ["fail"]

    tests = prefclean.test(root, reporter=prefclean.quiet)
    assert not tests.ok and {t.name: (t.status, t.failures) for t in tests.tests} == {
        "unique_m_id": ("fail", 1), "not_null_m_id": ("pass", 0)}

    project = prefclean.load_project(root)
    table = prefclean.sql(project, "select id, count(*) as n from {{ ref('m') }} group by id order by id")
    assert isinstance(table, pa.Table) and table.to_pylist() == [{"id": 1, "n": 2}, {"id": 2, "n": 1}]

    events = []
    exported = prefclean.export(project, "out", reporter=events.append)
    assert exported.ok and [(e.name, e.target) for e in exported.exports] == [("out", "parquet")]
    assert (root / "out.parquet").exists() and "3 rows" in exported.exports[0].detail
    assert [type(e) for e in events] == [ExportFinished]


def test_vars_override_the_project_s(make_project):
    root = make_project(config={"vars": {"n": 1}}, models={"m": "{{ config(materialized='table') }} "
                                                                "select {{ var('n') }} as n"})
    assert prefclean.build(root, vars={"n": 5}, reporter=prefclean.quiet).ok
    assert prefclean.sql(root, "select n from m").to_pylist() == [{"n": 5}]
    project = prefclean.load_project(root, vars='{"n": 6}')
    assert prefclean.build(project, reporter=prefclean.quiet).ok
    assert prefclean.sql(project, "select n from m").to_pylist() == [{"n": 6}]
    with pytest.raises(prefclean.PrefcleanError, match="var 'n' is \"seven\" \\(a string\\)"):
        prefclean.build(project, vars={"n": "seven"}, reporter=prefclean.quiet)
    root2 = make_project(config={"vars": {"n": 1, "m": 2}}, models={
        "m": "{{ config(materialized='table') }} select {{ var('n') }} as n, {{ var('m') }} as m"})
    project = prefclean.load_project(root2, vars={"n": 3})
    assert prefclean.build(project, vars={"m": 4}, reporter=prefclean.quiet).ok  # on top of load_project's
    assert prefclean.sql(project, "select n, m from m").to_pylist() == [{"n": 3, "m": 4}]


def test_the_notebook_reporter_shows_bars_and_only_the_lines_worth_reading(judged_project, capsys):
    result = prefclean.build(judged_project, refresh_judgments=True)  # the default reporter
    assert result.ok
    err = capsys.readouterr()
    shown = err.out + err.err
    assert "models" in shown and "judge fake" in shown  # the bars (tqdm.auto falls back to the terminal)
    assert "WARN accepted_range_judged_id" in shown and "Done in" in shown
    assert "OK table judged" not in shown  # the bar shows progress; the result has the details


def test_the_cli_lines_are_the_wording_of_the_events(judged_project):
    events = []
    result = prefclean.build(judged_project, reporter=events.append)
    printed = [line for e in events for line in lines(e)]
    assert printed[0].startswith("source pairs staged: 3 rows in ")
    assert printed[1].startswith("1 of 2 OK table judged ... 3 rows in ")
    assert printed[2].startswith("    judge fake (openai fake-judge at http://127.0.0.1:") and printed[2].endswith(
        f"judged 3, failed 0, cached 0, deduplicated 0; requests 3, retries 0, 429s 0, "
        f"tokens {result.judging.prompt_tokens}+{result.judging.completion_tokens}")
    assert printed[-1].startswith("Done in ") and printed[-1].endswith(
        "OK=2 ERROR=0 SKIP=0 TESTS_PASSED=2 TESTS_FAILED=0 TESTS_WARNED=1")
    assert not any(isinstance(e, SummaryReady) for e in events)


def readme_python_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## From Python"):]
    return section[section.index("```python\n") + len("```python\n"):section.index("\n```", section.index("```python"))]


def test_the_readme_s_python_example_runs_in_a_notebook_cell(tmp_path, fake_judge, monkeypatch):
    """The README's example, verbatim, run as a Jupyter cell would be (inside a running event loop) on the
    example project judged by the loopback judge."""
    root = copy_example(tmp_path, fake_judge)
    monkeypatch.chdir(root)
    cell: dict = {}

    async def notebook_cell():
        exec(readme_python_example(), cell)

    asyncio.run(notebook_cell())
    result = cell["result"]
    assert result.ok, result.models
    assert result.model("pair_decisions").ok and result.model("judged_pairs").judging.judged > 0
    assert isinstance(cell["table"], pa.Table) and sum(cell["table"].column("n").to_pylist()) == \
        sum(result.summary["decisions"].values())


def test_each_judge_of_a_panel_counts_only_its_own_rows(make_project, fake_judge):
    rows = [row(i) for i in range(3)]
    judges = {"a": judge_config(fake_judge, model="judge-a"), "b": judge_config(fake_judge, model="judge-b")}
    root = judge_project(make_project, fake_judge, rows, judges=judges, models={
        "panel": "{{ config(materialized='table') }}\nselect id, "
                 "{{ judge_panel('instruction', 'generations', judges=['a', 'b']) }} as js from {{ source('pairs') }}"})
    result = prefclean.build(root, reporter=prefclean.quiet)
    assert result.ok, result.models
    runs = {j.judge: j.stats for j in result.model("panel").judges}
    assert {name: (s.rows, s.judged, s.requests) for name, s in runs.items()} == {"a": (3, 3, 3), "b": (3, 3, 3)}
    assert result.model("panel").judging.requests == result.judging.requests == fake_judge.stats()["requests"] == 6


def test_a_reporter_that_raises_on_judge_progress_costs_no_judgment(judged_project):
    def broken(event):
        if isinstance(event, JudgingProgress):
            raise ValueError("display broke")

    result = prefclean.build(judged_project, reporter=broken, refresh_judgments=True)
    assert result.ok and result.judging.judged == 3 and result.judging.failed == 0
    assert result.model("judged").warnings == (
        "WARNING the reporter failed on JudgingProgress (ValueError: display broke); the build went on without it",)


def test_judges_says_which_judges_can_work(make_project, fake_judge):
    dead = judge_config(fake_judge, base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2)
    root = judge_project(make_project, fake_judge, [row(0)], judges={"fake": judge_config(fake_judge), "dead": dead})
    found = {j.name: j for j in prefclean.judges(root)}
    assert found["fake"].ok and found["fake"].engine == "openai" and found["fake"].status.startswith("ok")
    assert not found["dead"].ok and found["dead"].status.startswith("UNAVAILABLE")
    assert all(j.status == "not checked" for j in prefclean.judges(root, check=False))


CONTEXT_UDF = """
import pyarrow as pa
from prefclean import udf


@udf(params=["BIGINT"], returns="VARCHAR", with_context=True)
def which_run(ctx, xs):
    if ctx.options.judge_override == "missing":
        ctx.fail("judge 'missing' cannot start: no such file")
        raise RuntimeError("raised inside DuckDB")
    ctx.note_once(f"seen by {ctx.model}")
    return pa.array([f"{ctx.model}:{ctx.options.refresh_judgments}"] * len(xs))
"""


def test_a_context_udf_reads_the_typed_run_options_and_reports_through_the_context(make_project):
    # a judge named `missing` (never started: no model calls judge()), since --judge must name one of prefclean.yml
    root = make_project(config={"judges": {"missing": {"engine": "openai", "base_url": "http://127.0.0.1:9/v1",
                                                       "model": "m"}}},
                        udfs={"ctx": CONTEXT_UDF},
                        models={"m": "{{ config(materialized='table') }} select which_run(range) as r from range(2)",
                                "n": "{{ config(materialized='table') }} select which_run(range) as r from range(3)"})
    result = prefclean.build(root, refresh_judgments=True, reporter=prefclean.quiet)
    assert result.ok and prefclean.sql(root, "select distinct r from m").to_pylist() == [{"r": "m:True"}]
    assert result.model("m").warnings == ("seen by m",) and result.model("n").warnings == ("seen by n",)

    failed = prefclean.build(root, judge="missing", reporter=prefclean.quiet)
    assert [m.error for m in failed.models] == ["model 'm' failed: judge 'missing' cannot start: no such file",
                                                "model 'n' failed: judge 'missing' cannot start: no such file"]


def test_a_build_result_shows_its_counts_in_a_notebook(make_project):
    root = make_project(models={"bad": "select * from nowhere", "fine": "select 1 as x"})
    shown = repr(prefclean.build(root, reporter=prefclean.quiet))
    assert shown.startswith("BuildResult(ok=False, models=2 (error 1, success 1), tests=0, exports=0, "
                            "judging=JudgingStats(rows=0,"), shown
