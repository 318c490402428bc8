"""A small dbt-shaped project (jaffle-shop style: seeds, staging, marts, an incremental model, macros with
adapter.dispatch and return(), property files with config, every kind of test, hooks) built by prefclean as a
dbt user would write it; only prefclean.yml is prefclean's own."""

from __future__ import annotations

from prefclean.errors import EXIT_OK

FILES = {
    "seeds/raw_customers.csv": "id,first_name,zip\n1,Ann,01234\n2,Bob,98765\n3,Cy,00042\n",
    "seeds/raw_orders.csv": "id,user_id,amount_cents,status\n10,1,250,completed\n11,1,400,returned\n12,3,100,completed\n",
    "seeds/properties.yml": {"version": 2, "seeds": [
        {"name": "raw_customers", "config": {"column_types": {"zip": "varchar"}}}]},
    "macros/money.sql": (
        "{% macro cents_to_dollars(column) %}{{ return(adapter.dispatch('cents_to_dollars')(column)) }}{% endmacro %}\n"
        "{% macro default__cents_to_dollars(column) %}({{ column }} / 100)::decimal(16, 2){% endmacro %}\n"
        "{% macro statuses() %}{{ return(['completed', 'returned']) }}{% endmacro %}\n"),
    "models/staging/stg_customers.sql": "select id as customer_id, first_name, zip from {{ ref('raw_customers') }}",
    "models/staging/stg_orders.sql": ("select id as order_id, user_id as customer_id, status, "
                                      "{{ cents_to_dollars('amount_cents') }} as amount from {{ ref('raw_orders') }}"),
    "models/marts/customers.sql": """
with orders as (select * from {{ ref('stg_orders') }})
select c.customer_id, c.first_name, c.zip,
  {% for s in statuses() %}count(*) filter (where o.status = '{{ s }}') as {{ s }}_orders, {% endfor %}
  coalesce(sum(o.amount) filter (where o.status = 'completed'), 0) as lifetime_value
from {{ ref('stg_customers') }} c left join orders o using (customer_id)
group by all
""",
    "models/marts/order_log.sql": """{{ config(materialized='incremental', unique_key='order_id',
                                       on_schema_change='append_new_columns') }}
select order_id, status, amount from {{ ref('stg_orders') }}
{% if is_incremental() %}where order_id not in (select order_id from {{ this }}){% endif %}
""",
    "models/marts/schema.yml": {"version": 2, "models": [
        {"name": "customers", "description": "one row per customer",
         "config": {"materialized": "table", "tags": ["marts"],
                    "post-hook": "create or replace table main.customer_count as select count(*) as n from {{ this }}"},
         "data_tests": [{"expression": {"arguments": {"expression": "lifetime_value >= 0"}}}],
         "columns": [
             {"name": "customer_id", "data_tests": ["unique", "not_null"]},
             {"name": "zip", "data_tests": [{"has_length": {"arguments": {"n": 5}}}]},
             {"name": "returned_orders", "data_tests": [
                 {"accepted_values": {"arguments": {"values": [0]}, "config": {"severity": "warn"}}}]}]},
        {"name": "order_log", "config": {"tags": ["marts"]},
         "columns": [{"name": "order_id", "data_tests": [
             {"relationships": {"arguments": {"to": "ref('stg_orders')", "field": "order_id"}}}]}]},
    ], "unit_tests": [
        {"name": "returned_orders_do_not_count", "model": "customers",
         "given": [{"input": "ref('stg_customers')", "rows": [{"customer_id": 1, "first_name": "A"}]},
                   {"input": "ref('stg_orders')", "rows": [{"customer_id": 1, "status": "returned", "amount": 9}]}],
         "expect": {"rows": [{"customer_id": 1, "returned_orders": 1, "lifetime_value": 0}]}}]},
    "tests/generic/has_length.sql": ("{% test has_length(model, column_name, n) %}\n"
                                     "select * from {{ model }} where length({{ column_name }}) <> {{ n }}\n{% endtest %}"),
    "tests/assert_no_negative_orders.sql": "select * from {{ ref('stg_orders') }} where amount < 0",
}


def test_a_dbt_shaped_project_builds_tests_and_rebuilds(make_project, run_cli, query):
    root = make_project(files=FILES)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    out = result.output
    for line in ("OK seed raw_customers", "OK view stg_orders", "OK table customers", "OK incremental order_log",
                 "PASS returned_orders_do_not_count", "PASS has_length_customers_zip", "PASS unique_customers_customer_id",
                 "PASS relationships_order_log_order_id", "PASS assert_no_negative_orders",
                 "WARN accepted_values_customers_returned_orders (1 failing row)"):
        assert line in out, (line, out)
    assert query(root, "select customer_id, zip, completed_orders, returned_orders, lifetime_value::double "
                       "from customers order by 1") == [(1, "01234", 1, 1, 2.5), (2, "98765", 0, 0, 0.0),
                                                         (3, "00042", 1, 0, 1.0)]
    assert query(root, "select n from customer_count") == [(3,)]  # the post-hook ran

    (root / "seeds/raw_orders.csv").write_text(FILES["seeds/raw_orders.csv"] + "13,2,999,completed\n")
    result = run_cli("build", "-s", "+tag:marts", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert query(root, "select count(*) from order_log") == [(4,)]
    assert query(root, "select lifetime_value::double from customers where customer_id = 2") == [(9.99,)]
    listed = run_cli("ls", "-s", "tag:marts,config.materialized:incremental", cwd=root).output.split()
    assert listed[0] == "order_log" and "customers" not in listed


def test_descriptions_from_property_files_reach_the_manifest(make_project, run_cli):
    import json

    files = {**FILES, "models/marts/schema.yml": {"version": 2, "models": [
        {"name": "customers", "description": "one row per customer",
         "columns": [{"name": "zip", "description": "postal code, leading zeros kept"}]}]}}
    root = make_project(files=files)
    assert run_cli("compile", cwd=root).exit_code == EXIT_OK
    manifest = json.loads((root / "target/manifest.json").read_text())
    customers = manifest["models"]["customers"]
    assert customers["description"] == "one row per customer"
    assert customers["columns"]["zip"]["description"] == "postal code, leading zeros kept"
    assert manifest["models"]["raw_customers"]["resource_type"] == "seed"


import pytest  # noqa: E402


@pytest.mark.parametrize("path, expected", [
    ("dbt_project.yml", "dbt_project.yml is not read by prefclean: move its models:"),
    ("packages.yml", "packages.yml is not read by prefclean: packages are not supported"),
    ("snapshots/orders_snapshot.sql", "snapshots/ is not supported by prefclean"),
])
def test_dbt_files_prefclean_would_not_read_are_errors(make_project, run_cli, path, expected):
    root = make_project(models={"m": "select 1 as x"}, files={path: "name: shop\n"})
    for command in ("build", "compile"):
        result = run_cli(command, cwd=root)
        assert result.exit_code == 2, result
        assert expected in result.output
