"""File exports (parquet with zstd, jsonl, csv) through `prefclean export` and after `prefclean build`."""

from __future__ import annotations

import json

import duckdb

from prefclean.errors import EXIT_FAILED, EXIT_OK, EXIT_USER_ERROR

ROWS = [{"id": i, "text": f"t{i}", "tags": ["a", "b"][: i % 3]} for i in range(5)]
MODELS = {"final": "{{ config(materialized='table') }} select * from {{ source('s') }}"}
EXPORTS = {
    "pq": {"model": "final", "target": "parquet"},
    "js": {"model": "final", "target": "jsonl", "path": "out/final.jsonl"},
    "cs": {"model": "final", "target": "csv", "path": "out/final.csv"},
}


def _project(make_project, exports=EXPORTS, models=MODELS):
    return make_project(config={"sources": {"s": {"rows": ROWS}}, "exports": exports}, models=models)


def _check_files(root):
    pq = root / "target/exports/pq.parquet"
    assert duckdb.sql(f"select count(*), list(id order by id) from '{pq}'").fetchall() == [(5, [0, 1, 2, 3, 4])]
    assert duckdb.sql(f"select distinct compression from parquet_metadata('{pq}')").fetchall() == [("ZSTD",)]
    lines = [json.loads(line) for line in (root / "out/final.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == [0, 1, 2, 3, 4]
    assert {r["id"]: r["tags"] for r in lines}[2] == ["a", "b"]
    csv = (root / "out/final.csv").read_text().splitlines()
    assert csv[0] == "id,text,tags" and len(csv) == 6


def test_exports_run_after_build(make_project, run_cli):
    root = _project(make_project)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    _check_files(root)
    assert "export pq OK: 5 rows of final -> target/exports/pq.parquet (" in result.output
    assert "export js OK: 5 rows of final -> out/final.jsonl" in result.output
    assert "export cs OK: 5 rows of final -> out/final.csv" in result.output


def test_export_command(make_project, run_cli):
    root = _project(make_project)
    assert run_cli("build", "--no-exports", cwd=root).exit_code == EXIT_OK
    assert not (root / "target/exports").exists() and not (root / "out").exists()
    result = run_cli("export", cwd=root)
    assert result.exit_code == EXIT_OK, result
    _check_files(root)
    (root / "out/final.csv").unlink()
    only = run_cli("export", "cs", cwd=root)
    assert only.exit_code == EXIT_OK and "export cs OK" in only.output and "export pq" not in only.output
    assert (root / "out/final.csv").exists()
    unknown = run_cli("export", "nope", cwd=root)
    assert unknown.exit_code == EXIT_USER_ERROR and "no export named 'nope'" in unknown.output
    misspelled = run_cli("export", "csv", cwd=root)
    assert misspelled.exit_code == EXIT_USER_ERROR and "did you mean 'cs'?" in misspelled.output


def test_export_before_build_says_so(make_project, run_cli):
    root = _project(make_project, exports={"pq": {"model": "final", "target": "parquet"}},
                    models={**MODELS, "other": "select 1 as x"})
    assert run_cli("build", "--select", "other", "--no-exports", cwd=root).exit_code == EXIT_OK
    result = run_cli("export", cwd=root)
    assert result.exit_code == EXIT_FAILED
    assert "model 'final' has not been built (run `prefclean build`)" in result.output


def test_failing_export_leaves_no_partial_file(make_project, run_cli):
    """The view builds (DuckDB binds it) but fails when read in full: the old export stays, no temp file."""
    root = _project(make_project, exports={"pq": {"model": "final", "target": "parquet", "path": "out/final.parquet"}})
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    before = (root / "out/final.parquet").read_bytes()
    (root / "models/final.sql").write_text(
        "select id, case when id = 4 then error('boom at row 4') else text end as text from {{ source('s') }}")
    run_cli("build", "--no-exports", cwd=root)
    result = run_cli("export", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert "export pq ERROR: cannot write" in result.output and "boom at row 4" in result.output
    assert (root / "out/final.parquet").read_bytes() == before
    assert sorted(p.name for p in (root / "out").iterdir()) == ["final.parquet"]


def test_build_failure_skips_exports(make_project, run_cli):
    models = {**MODELS, "broken": "select nope from {{ ref('final') }}"}
    root = _project(make_project, models=models)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED
    assert "exports skipped: the build failed" in result.output
    assert not (root / "target/exports/pq.parquet").exists()


def test_unknown_target_is_a_project_error_before_anything_runs(make_project, run_cli):
    root = _project(make_project, exports={"x": {"model": "final", "target": "xlsx"}})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert "prefclean.yml: `exports.x.target` is 'xlsx', expected one of parquet, jsonl, csv" in result.output
    assert not (root / "target/prefclean.duckdb").exists()


def test_an_export_of_no_model_fails_the_build_and_the_plan_before_anything_runs(make_project, run_cli):
    """A misspelt `model:` was an export that silently never ran (found in the #15 user pass)."""
    root = _project(make_project, exports={"pq": {"model": "finall", "target": "parquet"}})
    for command in ("build", "plan"):
        result = run_cli(command, cwd=root)
        assert result.exit_code == EXIT_USER_ERROR, result.output
        assert ("prefclean.yml: exports.pq.model: 'finall' is not a model or seed of this project; "
                "did you mean 'final'?") in result.output
    assert not (root / "target/prefclean.duckdb").exists() or not duckdb.connect(
        str(root / "target/prefclean.duckdb"), read_only=True).execute(
        "select count(*) from information_schema.tables where table_name = 'final'").fetchone()[0]
    disabled = _project(make_project, exports={"pq": {"model": "final", "target": "parquet"}},
                        models={"final": "{{ config(enabled=false) }} select 1 as x"})
    result = run_cli("build", cwd=disabled)
    assert result.exit_code == EXIT_USER_ERROR and "exports.pq.model: 'final' is disabled" in result.output
