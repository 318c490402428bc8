"""dbt's seeds and model config: seeds/*.csv with column_types, config in property files, enabled, tags,
full_refresh, incremental_strategy, pre_hook/post_hook, and every config key prefclean refuses by name."""

from __future__ import annotations

import pytest

from prefclean.errors import EXIT_FAILED, EXIT_OK, EXIT_USER_ERROR

CUSTOMERS = "id,zip,name\n1,01234,ann\n2,98765,bob\n3,00042,cy\n"
ORDERS = "order_id;customer_id;amount\n10;1;2.5\n11;1;4\n12;3;1\n"
SEEDS_YML = {"version": 2, "seeds": [
    {"name": "raw_customers", "config": {"column_types": {"zip": "varchar"}},
     "columns": [{"name": "id", "data_tests": ["unique", "not_null"]}]},
    {"name": "raw_orders", "config": {"delimiter": ";"}},
]}
MART = ("{{ config(materialized='table') }}\nselect c.name, c.zip, sum(o.amount) as total from {{ ref('raw_customers') }} c "
        "left join {{ ref('raw_orders') }} o on o.customer_id = c.id group by all order by c.name")


def _seeded(make_project, **extra):
    return make_project(models={"customer_totals": MART, **extra.pop("models", {})},
                        files={"seeds/raw_customers.csv": CUSTOMERS, "seeds/more/raw_orders.csv": ORDERS,
                               "seeds/properties.yml": SEEDS_YML, **extra.pop("files", {})}, **extra)


def test_prefclean_seed_loads_every_csv_with_column_types(make_project, run_cli, query):
    root = _seeded(make_project)
    result = run_cli("seed", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "OK seed raw_customers ... 3 rows" in result.output and "OK seed raw_orders ... 3 rows" in result.output
    assert "customer_totals" not in result.output  # `seed` loads seeds only
    assert query(root, "select zip from raw_customers order by id") == [("01234",), ("98765",), ("00042",)]
    assert query(root, "select data_type from information_schema.columns where table_name = 'raw_orders' "
                       "and column_name = 'amount'") == [("DOUBLE",)]
    result = run_cli("seed", "-s", "raw_orders", cwd=root)
    assert "raw_orders" in result.output and "raw_customers" not in result.output, result


def test_build_loads_seeds_first_refs_them_and_runs_their_tests(make_project, run_cli, query):
    root = _seeded(make_project)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "PASS unique_raw_customers_id" in result.output
    assert query(root, "select name, zip, total from customer_totals") == [
        ("ann", "01234", 6.5), ("bob", "98765", None), ("cy", "00042", 1.0)]
    listed = run_cli("ls", "-s", "resource_type:seed", cwd=root).output.split()
    assert listed[0] == "raw_customers" and "seed" in listed and "customer_totals" not in listed


@pytest.mark.parametrize("files, expected", [
    ({"seeds/customer_totals.csv": "a\n1\n"}, "a seed and a model are both named 'customer_totals'"),
    ({"seeds/properties.yml": {"seeds": [{"name": "raw_customers", "config": {"quote_columns": True}}]}},
     "`quote_columns` is not supported by prefclean"),
    ({"seeds/properties.yml": {"seeds": [{"name": "raw_customer"}]}},
     "seeds[0] names unknown seed 'raw_customer' (seeds are seeds/*.csv); did you mean 'raw_customers'?"),
    ({"seeds/properties.yml": {"seeds": [{"name": "raw_customers", "config": {"column_types": ["zip"]}}]}},
     "`column_types` should map column names to DuckDB types"),
])
def test_seed_mistakes_are_user_errors(make_project, run_cli, files, expected):
    result = run_cli("build", cwd=_seeded(make_project, files=files))
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output


def _configured(make_project, config: dict, template="select 1 as id", **more):
    return make_project(models={"m": template, "after": "select * from {{ ref('m') }}",
                                "schema.yml": {"version": 2, "models": [{"name": "m", "config": config}]}, **more})


def test_config_in_property_files_and_the_models_config_wins(make_project, run_cli, relation_type):
    root = _configured(make_project, {"materialized": "table", "tags": ["nightly"]})
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    assert relation_type(root, "m") == "BASE TABLE"
    root = _configured(make_project, {"materialized": "table", "tags": ["nightly"]},
                       template="{{ config(materialized='view', tags=['core']) }} select 1 as id")
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    assert relation_type(root, "m") == "VIEW"
    for tag in ("nightly", "core"):  # tags add up across levels, as in dbt
        result = run_cli("ls", "-s", f"tag:{tag}", cwd=root)
        assert result.output.split()[0] == "m", result


def test_enabled_false_takes_a_model_and_its_tests_out(make_project, run_cli, relation_type):
    root = make_project(models={"m": "select 1 as id", "off": "{{ config(enabled=false) }} select null as id",
                                "schema.yml": {"models": [{"name": "off", "columns": [{"name": "id",
                                                                                       "data_tests": ["not_null"]}]}]}})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "off" not in result.output and relation_type(root, "off") is None
    (root / "models/after.sql").write_text("select * from {{ ref('off') }}")
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "model 'after' (models/after.sql): ref('off') names a disabled model" in result.output


@pytest.mark.parametrize("key, value, expected", [
    ("partition_by", "id", "`partition_by` is not supported by prefclean"),
    ("database", "other", "`database` is not supported by prefclean (every model is in the project's warehouse)"),
    ("alias", 3, "`alias` should be a name (text), not 3"),
    ("grants", {"select": ["x"]}, "`grants` is not supported by prefclean"),
    ("contract", {"enforced": True}, "an enforced contract needs the model's columns, each with a data_type"),
    ("materialised", "table", "unknown config `materialised`; did you mean `materialized`?"),
    ("column_types", {"a": "int"}, "`column_types` is not supported by prefclean on a model"),
    ("materialized", "snapshot", "materialized='snapshot' is not one of view, table, incremental, ephemeral"),
    ("on_schema_change", "ignore", "on_schema_change='ignore' is not supported by prefclean (dbt's default"),
])
@pytest.mark.parametrize("where", ["config()", "schema.yml"])
def test_dbt_config_prefclean_does_not_do_is_an_error_naming_it(make_project, run_cli, key, value, expected, where):
    if where == "config()":
        root = make_project(models={"m": f"{{{{ config({key}={value!r}) }}}} select 1 as id"})
    else:
        root = _configured(make_project, {key: value})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output and "model 'm' (models/m.sql)" in result.output


@pytest.mark.parametrize("config, expected", [
    ({"materialized": "incremental", "incremental_strategy": "merge", "unique_key": "id"},
     "incremental_strategy='merge' is not supported by prefclean"),
    ({"materialized": "incremental", "incremental_strategy": "append", "unique_key": "id"},
     "incremental_strategy='append' appends rows; it takes no unique_key"),
    ({"materialized": "incremental", "incremental_strategy": "delete+insert"}, "needs a unique_key"),
])
def test_incremental_strategies_prefclean_does_not_have(make_project, run_cli, config, expected):
    result = run_cli("build", cwd=_configured(make_project, config))
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output


def test_full_refresh_false_keeps_an_incremental_table(make_project, run_cli, query):
    template = ("{{ config(materialized='incremental', incremental_strategy='append', full_refresh=false) }}\n"
                "select {{ var('n') }} as n")
    root = make_project(config={"vars": {"n": 1}}, models={"m": template})
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    assert run_cli("build", "--full-refresh", "--vars", '{"n": 2}', cwd=root).exit_code == EXIT_OK
    assert query(root, "select list(n order by n) from m") == [([1, 2],)]  # appended, not rebuilt


HOOKED = """{{ config(materialized='table',
    pre_hook="create table if not exists hook_log (what varchar, n integer)",
    post_hook=["insert into hook_log select 'built', count(*) from {{ this }}",
               "insert into hook_log values ('{{ this.identifier }}', {{ var('extra', 0) }})"]) }}
select * from range(3) t(i)
"""


def test_pre_and_post_hooks_run_in_the_models_transaction(make_project, run_cli, query):
    root = make_project(models={"m": HOOKED})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert query(root, "select what, n from hook_log order by what") == [("built", 3), ("m", 0)]
    # A failing post_hook undoes the whole model: its new rows and the pre_hook's and other hooks' effects.
    (root / "models/m.sql").write_text(HOOKED.replace("range(3)", "range(5)").replace("{{ var('extra', 0) }}", "oops"))
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert "model 'm' failed: its post_hook[1]" in result.output and "nothing of the model was changed" in result.output
    assert query(root, "select count(*) from m") == [(3,)]
    assert query(root, "select count(*) from hook_log") == [(2,)]


def test_hooks_from_property_files_with_dbts_dashed_spelling(make_project, run_cli, query):
    root = _configured(make_project, {"materialized": "table", "pre-hook": "create or replace table marker as select 7 as x"})
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    assert query(root, "select x from marker") == [(7,)]


# prefclean.yml's dbt_project.yml parts: models:, seeds:, on-run-start, on-run-end.

FOLDERS = {
    "staging/stg_a": "select 1 as id",
    "staging/stg_b": "{{ config(materialized='view') }} select 2 as id",
    "marts/wide": "select * from {{ ref('stg_a') }}",
    "marts/off": "select 3 as id",
    "marts/schema.yml": {"models": [{"name": "wide", "config": {"materialized": "table"}}]},
}


@pytest.mark.parametrize("tree", [
    {"staging": {"+materialized": "table", "+tags": ["stg"]}, "marts": {"+materialized": "incremental",
                                                                         "off": {"+enabled": False}}},
    {"proj": {"+tags": ["stg"], "staging": {"+materialized": "table"},  # dbt's form: the project's name first
              "marts": {"materialized": "incremental", "off": {"enabled": False}}}},
])
def test_folder_config_in_prefclean_yml_with_dbts_precedence(make_project, run_cli, relation_type, tree):
    root = make_project(config={"models": tree}, models=FOLDERS)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert relation_type(root, "stg_a") == "BASE TABLE"  # the folder's
    assert relation_type(root, "stg_b") == "VIEW"        # the model's config() wins
    assert relation_type(root, "wide") == "BASE TABLE"   # the property file wins over the folder (incremental)
    assert relation_type(root, "off") is None            # disabled by name inside its folder
    assert run_cli("ls", "-s", "tag:stg", cwd=root).output.split()[0] == "stg_a"


def test_seed_config_in_prefclean_yml(make_project, run_cli, query):
    root = make_project(config={"seeds": {"+delimiter": ";", "codes": {"+column_types": {"zip": "varchar"}}}},
                        files={"seeds/codes.csv": "zip;n\n00123;1\n"})
    assert run_cli("seed", cwd=root).exit_code == EXIT_OK
    assert query(root, "select zip, n from codes") == [("00123", 1)]


@pytest.mark.parametrize("tree, expected", [
    ({"stagng": {"+materialized": "table"}},
     "prefclean.yml: models.stagng: no folder or model named 'stagng' in models/; did you mean 'staging'?"),
    ({"staging": {"+partition_by": "id"}}, "prefclean.yml: models.staging.+partition_by: `partition_by` is not "
                                          "supported by prefclean"),
    ({"staging": {"+materialised": "table"}}, "unknown config `materialised`; did you mean `materialized`?"),
    ({"staging": {"stg_c": {"+enabled": False}}}, "no folder or model named 'stg_c' in models/staging/"),
])
def test_folder_config_mistakes_name_the_key(make_project, run_cli, tree, expected):
    result = run_cli("build", cwd=make_project(config={"models": tree}, models=FOLDERS))
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output


def test_on_run_start_and_on_run_end(make_project, run_cli, query):
    config = {"vars": {"label": "nightly"},
              "on-run-start": "create table if not exists runs (label varchar, phase varchar)",
              "on-run-end": ["insert into runs values ('{{ var(\"label\") }}', 'end')",
                             "insert into runs select '{{ target.name }}', 'models=' || count(*) from "
                             "information_schema.tables where table_schema = 'main' and table_name = 'ok'"]}
    root = make_project(config=config, models={"ok": "select 1 as x", "bad": "select nope"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result  # bad fails; on-run-end runs all the same
    assert query(root, "select label, phase from runs order by phase") == [("nightly", "end"), ("dev", "models=1")]


def test_a_failing_on_run_start_stops_the_build_before_any_model(make_project, run_cli, relation_type):
    root = make_project(config={"on_run_start": ["select 1", "insert into nowhere values (1)"]},
                        models={"m": "select 1 as x"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert "prefclean.yml: on-run-start[1] failed: Catalog Error" in result.output
    assert relation_type(root, "m") is None


def test_seed_columns_get_the_types_dbt_gives_them(make_project, run_cli, query):
    csv = "n,x,at,ok,ts,big\n1,1.5,10:00:00,true,2020-01-01 10:00:00,3000000000\n2,2,11:00:00,false,2020-01-02 11:00,1\n"
    root = make_project(files={"seeds/kinds.csv": csv})
    assert run_cli("seed", cwd=root).exit_code == EXIT_OK
    # whole numbers INTEGER (BIGINT where dbt's INTEGER would overflow and dbt fails), a time of day text
    assert query(root, "select column_name, data_type from information_schema.columns where table_name = 'kinds' "
                       "order by ordinal_position") == [
        ("n", "INTEGER"), ("x", "DOUBLE"), ("at", "VARCHAR"), ("ok", "BOOLEAN"), ("ts", "TIMESTAMP"), ("big", "BIGINT")]
