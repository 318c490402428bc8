"""Materialization strategies and `on_schema_change` for incremental models, against real DuckDB files."""

from __future__ import annotations

import pytest

from prefclean.compiler import MATERIALIZATIONS
from prefclean.errors import EXIT_FAILED, EXIT_OK, EXIT_USER_ERROR
from prefclean.materializations import STRATEGIES


def _model(columns: str, mode: str | None = None) -> str:
    option = f", on_schema_change='{mode}'" if mode else ""
    return (f"{{{{ config(materialized='incremental', unique_key='id'{option}) }}}}\n"
            f"select {columns} from {{{{ source('s') }}}}\n"
            "{% if is_incremental() %}where id not in (select id from {{ this }}){% endif %}\n")


def _project(make_project, columns, mode=None, n=2):
    rows = [{"id": i, "a": f"a{i}", "b": i * 10} for i in range(n)]
    return make_project(config={"sources": {"s": {"rows": rows}}}, models={"m": _model(columns, mode)})


def _rebuild_with(root, columns, mode=None, n=3):
    import yaml

    rows = [{"id": i, "a": f"a{i}", "b": i * 10} for i in range(n)]
    (root / "prefclean.yml").write_text(yaml.safe_dump({"name": "proj", "sources": {"s": {"rows": rows}}}))
    (root / "models/m.sql").write_text(_model(columns, mode))


def _columns(query, root):
    return query(root, "select column_name, data_type from information_schema.columns "
                       "where table_name = 'm' order by ordinal_position")


def test_every_materialization_has_exactly_one_strategy():
    assert sorted(STRATEGIES) == sorted(MATERIALIZATIONS + ("seed",))
    assert {kind: type(s).__name__ for kind, s in STRATEGIES.items()} == {
        "view": "View", "table": "Table", "incremental": "Incremental", "ephemeral": "Ephemeral", "seed": "Seed"}


def test_a_new_column_fails_by_default_naming_the_options_and_keeps_the_table(make_project, run_cli, query):
    root = _project(make_project, "id, a")
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    _rebuild_with(root, "id, a, b")
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert "incremental model 'm' has other columns than its table (new: b)" in result.output
    assert "--full-refresh --select m" in result.output
    assert "on_schema_change to 'append_new_columns' or 'sync_all_columns'" in result.output
    assert query(root, "select id, a from m order by id") == [(0, "a0"), (1, "a1")]


def test_fail_names_a_changed_type_too(make_project, run_cli, query):
    root = _project(make_project, "id, a, b", mode="fail")
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    _rebuild_with(root, "id, a, b::varchar as b", mode="fail")
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert "(changed type: b BIGINT -> VARCHAR)" in result.output
    assert _columns(query, root) == [("id", "BIGINT"), ("a", "VARCHAR"), ("b", "BIGINT")]


def test_append_new_columns_adds_them_and_keeps_the_gone_ones(make_project, run_cli, query):
    root = _project(make_project, "id, a")
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    _rebuild_with(root, "id, b", mode="append_new_columns")
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "on_schema_change=append_new_columns: added b BIGINT" in result.output
    assert "on_schema_change=append_new_columns: kept a (NULL in new rows)" in result.output
    assert _columns(query, root) == [("id", "BIGINT"), ("a", "VARCHAR"), ("b", "BIGINT")]
    # old rows are not recomputed (b stays NULL there); the new row has b and no a
    assert query(root, "select id, a, b from m order by id") == [(0, "a0", None), (1, "a1", None), (2, None, 20)]
    result = run_cli("build", cwd=root)  # b is there now; a kept column is said again on every build
    assert result.exit_code == EXIT_OK and "added" not in result.output, result
    assert "kept a (NULL in new rows)" in result.output


def test_append_new_columns_keeps_the_tables_type_and_says_so(make_project, run_cli, query):
    root = _project(make_project, "id, b")
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    _rebuild_with(root, "id, b::double as b", mode="append_new_columns")
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "kept the table's type of b BIGINT (query: DOUBLE); new values are cast" in result.output
    assert _columns(query, root) == [("id", "BIGINT"), ("b", "BIGINT")]
    assert query(root, "select id, b from m order by id") == [(0, 0), (1, 10), (2, 20)]


def test_sync_all_columns_adds_drops_and_retypes(make_project, run_cli, query):
    root = _project(make_project, "id, a, b")
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    _rebuild_with(root, "id, b::varchar as b, upper(a) as c", mode="sync_all_columns")
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "on_schema_change=sync_all_columns: added c VARCHAR" in result.output
    assert "on_schema_change=sync_all_columns: dropped a" in result.output
    assert "on_schema_change=sync_all_columns: changed type of b BIGINT -> VARCHAR" in result.output
    assert _columns(query, root) == [("id", "BIGINT"), ("b", "VARCHAR"), ("c", "VARCHAR")]
    assert query(root, "select id, b, c from m order by id") == [(0, "0", None), (1, "10", None), (2, "20", "A2")]


def test_a_sync_that_cannot_cast_changes_nothing(make_project, run_cli, query):
    root = _project(make_project, "id, a")
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    _rebuild_with(root, "id, 1 as a, b", mode="sync_all_columns")  # 'a0' cannot become an INTEGER
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert "model 'm' failed:" in result.output and "Traceback" not in result.output
    assert _columns(query, root) == [("id", "BIGINT"), ("a", "VARCHAR")]
    assert query(root, "select id, a from m order by id") == [(0, "a0"), (1, "a1")]


def test_full_refresh_rebuilds_whatever_on_schema_change_says(make_project, run_cli, query):
    root = _project(make_project, "id, a")
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    _rebuild_with(root, "id, b")
    assert run_cli("build", "--full-refresh", cwd=root).exit_code == EXIT_OK
    assert _columns(query, root) == [("id", "BIGINT"), ("b", "BIGINT")]
    assert query(root, "select count(*) from m") == [(3,)]


@pytest.mark.parametrize("mode, expected", [
    ("ignore", "on_schema_change='ignore' is not supported by prefclean (dbt's default"),
    ("append_new_column", "on_schema_change='append_new_column' is not supported by prefclean; use one of fail, "
                          "append_new_columns, sync_all_columns"),
])
def test_an_unsupported_on_schema_change_is_a_user_error(make_project, run_cli, mode, expected):
    root = _project(make_project, "id, a", mode=mode)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output and "model 'm' (models/m.sql)" in result.output


def test_on_schema_change_on_a_table_model_is_an_error_not_ignored(make_project, run_cli):
    root = make_project(models={"t": "{{ config(materialized='table', on_schema_change='sync_all_columns') }} select 1 as x"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "on_schema_change applies to incremental models only" in result.output
