"""dbt's `schema` and `alias` config: where a model is built, what ref() and `this` resolve to, a project's own
generate_schema_name, collisions, and every part of prefclean that finds a model's table (exports, the summary,
`prefclean sql`, the dashboard's reader, state)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from prefclean.errors import EXIT_OK, EXIT_USER_ERROR

MODELS = {
    "stg_orders": "{{ config(materialized='table', schema='staging', alias='orders') }}\n"
                  "select 1 as id, 'a' as who union all select 2, 'b'",
    "orders_mart": "{{ config(materialized='table', post_hook=\"insert into {{ this }} values (3, '{{ this.schema }}')\") }}\n"
                   "select * from {{ ref('stg_orders') }}",
    "marts.yml": {"version": 2, "models": [{"name": "orders_mart", "config": {"schema": "marts"},
                                            "columns": [{"name": "id", "data_tests": ["unique", "not_null"]}]}]},
}


def _project(make_project, models=None, **more):
    return make_project(models={**MODELS, **(models or {})}, **more)


def test_schema_and_alias_build_where_dbt_duckdb_builds_and_ref_and_this_follow(make_project, run_cli, query,
                                                                                relation_type):
    root = _project(make_project)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert relation_type(root, "orders", "main_staging") == "BASE TABLE"
    assert relation_type(root, "stg_orders") is None and relation_type(root, "stg_orders", "main_staging") is None
    assert relation_type(root, "orders_mart", "main_marts") == "BASE TABLE"
    assert query(root, "select id, who from main_marts.orders_mart order by id") == [
        (1, "a"), (2, "b"), (3, "main_marts")]  # the post_hook's {{ this }} and this.schema
    assert "PASS unique_orders_mart_id" in result.output
    compiled = (root / "target/compiled/models/orders_mart.sql").read_text()
    assert '"main_staging"."orders"' in compiled
    listed = run_cli("ls", "--output", "json", "-s", "stg_orders", cwd=root).output
    assert '"schema": "main_staging"' in listed and '"alias": "orders"' in listed, listed


def test_a_project_generate_schema_name_replaces_dbts(make_project, run_cli, relation_type):
    macro = ("{% macro generate_schema_name(custom_schema_name, node) -%}"
             "{{ custom_schema_name | trim if custom_schema_name is not none else 'core' }}{%- endmacro %}")
    root = _project(make_project, models={"plain": "select 1 as x"}, macros={"naming": macro})
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    assert relation_type(root, "orders", "staging") == "BASE TABLE"
    assert relation_type(root, "orders_mart", "marts") == "BASE TABLE"
    assert relation_type(root, "plain", "core") == "VIEW"  # an override names every model, as in dbt


def test_a_macro_may_not_put_a_model_in_prefclean_s_own_schemas(make_project, run_cli):
    macro = ("{% macro generate_schema_name(custom_schema_name, node) -%}"
             "{{ custom_schema_name or target.schema }}{%- endmacro %}")
    root = make_project(models={"m": "{{ config(schema='sources') }} select 1 as x"}, macros={"naming": macro})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "model 'm' (models/m.sql): schema 'sources' is prefclean's own" in result.output


@pytest.mark.parametrize("models, expected", [
    ({"a": "{{ config(alias='shared') }} select 1 as x", "b": "{{ config(alias='SHARED') }} select 2 as x"},
     "model 'a' (models/a.sql) and model 'b' (models/b.sql) would both build main.SHARED"),
    ({"a": "select 1 as x", "b": "{{ config(alias='a') }} select 2 as x"},
     "model 'a' (models/a.sql) and model 'b' (models/b.sql) would both build main.a"),
])
def test_two_models_resolving_to_one_relation_is_an_error_naming_both(make_project, run_cli, models, expected):
    result = run_cli("build", cwd=make_project(models=models))
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output


def test_seeds_take_schema_and_alias_too(make_project, run_cli, query):
    root = make_project(models={"m": "select count(*) as n from {{ ref('raw_people') }}"},
                        files={"seeds/raw_people.csv": "id\n1\n2\n",
                               "seeds/props.yml": {"seeds": [{"name": "raw_people",
                                                              "config": {"schema": "raw", "alias": "people"}}]}})
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    assert query(root, "select count(*) from main_raw.people") == [(2,)]
    assert query(root, "select n from m") == [(2,)]


def test_exports_sql_and_the_dashboard_find_a_model_where_it_was_built(make_project, run_cli, query):
    from prefclean.dashboard.queries import Reader
    from prefclean.project import load_project

    root = _project(make_project, config={"exports": {"out": {"model": "orders_mart", "target": "parquet",
                                                              "path": "out.parquet"}}})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert pq.read_table(root / "out.parquet").num_rows == 3
    result = run_cli("sql", "select count(*) as n from {{ ref('stg_orders') }}", "--format", "csv", cwd=root)
    assert result.exit_code == EXIT_OK and result.output.split() == ["n", "2"], result
    assert query(root, "select model, schema_name, identifier from _prefclean.model_relations order by model") == [
        ("orders_mart", "main_marts", "orders_mart"), ("stg_orders", "main_staging", "orders")]
    with Reader.open(load_project(root).warehouse) as reader:
        assert reader.need("stg_orders") == '"main_staging"."orders"'
        assert reader.columns("stg_orders") == {"id", "who"}


def test_changing_the_alias_is_a_modified_config_and_rebuilds_there(make_project, run_cli, relation_type, tmp_path):
    root = _project(make_project)
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    saved = tmp_path / "state"
    saved.mkdir()
    (saved / "manifest.json").write_bytes((root / "target/manifest.json").read_bytes())
    (root / "models/stg_orders.sql").write_text(MODELS["stg_orders"].replace("alias='orders'", "alias='orders_v2'"))
    result = run_cli("ls", "-s", "state:modified.configs", "--state", str(saved), cwd=root)
    assert result.output.split()[:1] == ["stg_orders"], result
    assert run_cli("build", "-s", "state:modified+", "--state", str(saved), cwd=root).exit_code == EXIT_OK
    assert relation_type(root, "orders_v2", "main_staging") == "BASE TABLE"


def test_a_warehouse_without_prefclean_s_tables_has_every_model_in_main():
    import duckdb

    from prefclean.warehouse import model_relation, model_relations

    con = duckdb.connect()  # (no _prefclean schema: an older warehouse, or a bare connection)
    assert model_relations(con) == {} and model_relation(con, "m") == ("main", "m")
