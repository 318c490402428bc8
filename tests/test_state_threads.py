"""dbt's `--state DIR` with state:new / state:modified selectors against a saved manifest, and the `--threads N`
and `--target NAME` flags, through the real CLI."""

from __future__ import annotations

import shutil

from prefclean.errors import EXIT_OK, EXIT_USER_ERROR

MODELS = {
    "base": "select 1 as id",
    "mid": "select id from {{ ref('base') }}",
    "top": "select id from {{ ref('mid') }}",
    "other": "select 2 as id",
}


def _saved(make_project, run_cli, tmp_path):
    """A project built once, with its target/ copied away as production state."""
    root = make_project(models=MODELS)
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    state = tmp_path / "prod-state"
    shutil.copytree(root / "target", state, ignore=shutil.ignore_patterns("*.duckdb*"))
    return root, state


def _listed(result) -> list[str]:
    return [line.split()[0] for line in result.output.splitlines() if line.strip()]


def test_nothing_changed_selects_no_model_with_state_modified(make_project, run_cli, tmp_path):
    root, state = _saved(make_project, run_cli, tmp_path)
    result = run_cli("ls", "-s", "state:modified", "--state", state, cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert _listed(result) == []


def test_a_changed_body_is_modified_and_modified_plus_takes_its_children(make_project, run_cli, tmp_path):
    root, state = _saved(make_project, run_cli, tmp_path)
    (root / "models" / "mid.sql").write_text("select id, 2 as two from {{ ref('base') }}")
    result = run_cli("ls", "-s", "state:modified", "--state", state, cwd=root)
    assert _listed(result) == ["mid"], result
    assert _listed(run_cli("ls", "-s", "state:modified+", "--state", state, cwd=root)) == ["mid", "top"]
    assert _listed(run_cli("ls", "-s", "+state:modified", "--state", state, cwd=root)) == ["base", "mid"]
    assert _listed(run_cli("ls", "-s", "state:modified.configs", "--state", state, cwd=root)) == []
    build = run_cli("build", "-s", "state:modified+", "--state", state, cwd=root)
    assert build.exit_code == EXIT_OK, build
    assert "mid" in build.output and "top" in build.output and "other" not in build.output


def test_a_changed_config_is_modified_but_not_its_body(make_project, run_cli, tmp_path):
    root, state = _saved(make_project, run_cli, tmp_path)
    (root / "models" / "other.sql").write_text("{{ config(materialized='table') }}\nselect 2 as id")
    assert _listed(run_cli("ls", "-s", "state:modified", "--state", state, cwd=root)) == ["other"]
    assert _listed(run_cli("ls", "-s", "state:modified.configs", "--state", state, cwd=root)) == ["other"]
    assert _listed(run_cli("ls", "-s", "state:modified.body", "--state", state, cwd=root)) == []


def test_a_new_model_is_new_and_modified(make_project, run_cli, tmp_path):
    root, state = _saved(make_project, run_cli, tmp_path)
    (root / "models" / "fresh.sql").write_text("select id from {{ ref('other') }}")
    assert _listed(run_cli("ls", "-s", "state:new", "--state", state, cwd=root)) == ["fresh"]
    assert _listed(run_cli("ls", "-s", "state:modified", "--exclude", "state:new", "--state", state, cwd=root)) == []
    assert _listed(run_cli("ls", "-s", "state:modified,+top", "--state", state, cwd=root)) == []


def test_state_selector_mistakes_are_one_line_errors(make_project, run_cli, tmp_path):
    root, state = _saved(make_project, run_cli, tmp_path)
    result = run_cli("ls", "-s", "state:modified", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR and "needs --state DIR" in result.output, result
    result = run_cli("build", "-s", "state:modified", "--state", tmp_path / "nowhere", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR and "no manifest.json there" in result.output, result
    result = run_cli("ls", "-s", "state:modified.vars", "--state", state, cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "`state:modified.vars` is not supported by prefclean" in result.output
    (state / "manifest.json").write_text("{not json")
    result = run_cli("ls", "-s", "state:new", "--state", state, cwd=root)
    assert result.exit_code == EXIT_USER_ERROR and "manifest.json cannot be read" in result.output, result
    assert result.exception is None


def test_threads_sets_duckdbs_threads_for_the_build_and_target_threads(make_project, run_cli, query):
    root = make_project(models={"t": "{{ config(materialized='table') }}\n"
                                     "select current_setting('threads') as now, {{ target.threads }} as seen"})
    result = run_cli("build", "--threads", "3", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert query(root, "select now, seen from t") == [(3, 3)]
    assert run_cli("build", "--threads", "0", cwd=root).exit_code == EXIT_USER_ERROR


def test_target_dev_is_prefcleans_one_target_and_any_other_is_an_error(make_project, run_cli, query):
    root = make_project(models={"t": "{{ config(materialized='table') }}\nselect '{{ target.name }}' as name"})
    assert run_cli("build", "--target", "dev", cwd=root).exit_code == EXIT_OK
    assert query(root, "select name from t") == [("dev",)]
    result = run_cli("build", "--target", "prod", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "--target prod: prefclean has one target, 'dev'" in result.output
    assert result.exception is None
