"""prefclean.yml parsing, --vars and --project-dir."""

from __future__ import annotations

import pytest

from prefclean.errors import EXIT_USER_ERROR, ProjectError
from prefclean.project import load_project, parse_vars

INLINE = {"pairs": {"type": "inline", "rows": [{"a": 1}, {"a": 2}]}}


def test_defaults_and_typed_sources(make_project):
    root = make_project(config={"vars": {"seed": 3}, "sources": {
        **INLINE,
        "files": {"path": "data/*.parquet", "columns": {"question": "instruction"}},
        "db": {"type": "duckdb", "path": "other.duckdb", "table": "t"},
        "hub": {"type": "huggingface", "path": "org/ds", "name": "cfg", "split": "train[:20]"},
    }})
    project = load_project(root)
    assert project.name == "proj"
    assert project.warehouse == root / "target" / "prefclean.duckdb"
    assert project.vars == {"seed": 3}
    assert project.sources["pairs"].type == "inline" and len(project.sources["pairs"].rows) == 2
    assert project.sources["files"].type == "parquet"  # inferred from the extension
    assert project.sources["files"].columns == {"question": "instruction"}
    assert project.sources["db"].table == "t"
    hub = project.sources["hub"]
    assert (hub.type, hub.path, hub.hf_name, hub.split) == ("huggingface", "org/ds", "cfg", "train[:20]")


@pytest.mark.parametrize("config, expected", [
    ({"sources": {"s": {"type": "excel", "path": "x.xlsx"}}}, "`sources.s.type` is 'excel'"),
    ({"sources": {"s": {"type": "parquet", "path": "x.parquet", "colums": {}}}}, "unknown key `sources.s.colums`"),
    ({"sources": {"s": {"type": "duckdb", "path": "x.duckdb"}}}, "`sources.s.table` must be a table name"),
    ({"sources": {"s": {"path": "x.weird"}}}, "`sources.s.type` is missing"),
    ({"sources": {"s": {"type": "inline", "rows": [1]}}}, "`sources.s.rows[0]` must be a mapping"),
    ({"vars": [1, 2]}, "`vars` must be a mapping"),
    ({"sourcse": {}}, "unknown top-level key `sourcse`"),
    ({"exports": {"e": {"target": "parquet"}}}, "`exports.e.model` must be the name of a model"),
    ({"judges": {"j": {"engine": "openai", "concurrency": "many"}}}, "`judges.j.concurrency` must be a whole number"),
])
def test_errors_name_the_file_and_key(make_project, config, expected):
    root = make_project(config=config)
    with pytest.raises(ProjectError) as info:
        load_project(root)
    assert "prefclean.yml" in str(info.value)
    assert expected in str(info.value)


def test_invalid_yaml_names_the_line(make_project, run_cli):
    root = make_project(config="name: x\nsources:\n  s: [unclosed\n")
    result = run_cli("ls", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert "prefclean.yml line" in result.output and "invalid YAML" in result.output
    assert "Traceback" not in result.output


def test_missing_project_file(tmp_path, run_cli):
    result = run_cli("build", cwd=tmp_path)
    assert result.exit_code == EXIT_USER_ERROR
    assert "no prefclean.yml" in result.output and "prefclean init" in result.output


def test_parse_vars_json_and_yaml():
    assert parse_vars('{"seed": 7, "name": "x"}') == {"seed": 7, "name": "x"}
    assert parse_vars("{seed: 7, flag: true}") == {"seed": 7, "flag": True}
    assert parse_vars(None) == {}
    with pytest.raises(ProjectError, match="must be a mapping"):
        parse_vars("[1, 2]")
    with pytest.raises(ProjectError, match="not valid YAML/JSON"):
        parse_vars("{seed: [")


def test_cli_vars_override_project_vars(make_project, run_cli, query):
    root = make_project(config={"vars": {"seed": 1, "label": "a"}, "sources": INLINE},
                        models={"m": "select {{ var('seed') }} as seed, '{{ var('label') }}' as label"})
    assert run_cli("build", cwd=root).exit_code == 0
    assert query(root, "select * from m") == [(1, "a")]
    result = run_cli("build", "--vars", '{"seed": 7}', cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select * from m") == [(7, "a")]
    result = run_cli("build", "--vars", "seed: 9", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select * from m") == [(9, "a")]


def test_bad_vars_is_a_user_error(make_project, run_cli):
    root = make_project(models={"m": "select 1 as x"})
    result = run_cli("build", "--vars", "[1]", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert "--vars must be a mapping" in result.output


def test_project_dir_option(make_project, run_cli, tmp_path, query):
    root = make_project(models={"m": "{{ config(materialized='table') }} select 42 as answer"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("build", "--project-dir", str(root), cwd=elsewhere)
    assert result.exit_code == 0, result
    assert query(root, "select answer from m") == [(42,)]
    assert not (elsewhere / "target").exists()
    assert "m" in run_cli("ls", "--project-dir", str(root), cwd=elsewhere).output


def test_warehouse_path_is_configurable(make_project, run_cli, query):
    root = make_project(config={"warehouse": "db/w.duckdb"}, models={"m": "select 1 as x"})
    assert run_cli("build", cwd=root).exit_code == 0
    assert (root / "db" / "w.duckdb").exists()
    assert query(root / "db" / "w.duckdb", "select x from m") == [(1,)]


def test_debug_shows_the_traceback(make_project, run_cli):
    root = make_project(config={"vars": "not a mapping"})
    quiet = run_cli("ls", cwd=root)
    assert quiet.exit_code == EXIT_USER_ERROR and "Traceback" not in quiet.output
    assert quiet.output.strip() == "error: prefclean.yml: `vars` must be a mapping, got str"
    loud = run_cli("ls", "--debug", cwd=root)
    assert loud.exit_code == EXIT_USER_ERROR and "Traceback" in loud.output


def test_a_relative_gguf_path_is_relative_to_the_project(make_project, tmp_path):
    root = make_project(config={"sources": INLINE, "judges": {
        "mine": {"engine": "llamacpp", "model": "models/judge.gguf"},
        "abs": {"engine": "llamacpp", "model": "/opt/judge.gguf"},
        "hub": {"engine": "llamacpp", "model": "Qwen/Qwen2.5-7B-Instruct-GGUF", "filename": "q.gguf"},
    }})
    judges = load_project(root).judges
    assert judges["mine"].model == str(root / "models" / "judge.gguf")
    assert judges["abs"].model == "/opt/judge.gguf"
    assert judges["hub"].model == "Qwen/Qwen2.5-7B-Instruct-GGUF"
