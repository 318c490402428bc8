"""Data tests: generic tests in YAML next to models, singular tests in data_tests/, severities."""

from __future__ import annotations

import json

import pytest

from prefclean.errors import EXIT_FAILED, EXIT_OK, EXIT_USER_ERROR

ROWS = [
    {"id": 1, "kind": "keep", "score": 1, "parent": 10},
    {"id": 2, "kind": "drop", "score": 5, "parent": 20},
    {"id": 3, "kind": "flip", "score": 3, "parent": 10},
]
MODELS = {
    "parents": "{{ config(materialized='table') }} select * from (values (10), (20)) t(pid)",
    "items": "{{ config(materialized='table') }} select * from {{ source('s') }}",
    "downstream": "select count(*) as n from {{ ref('items') }}",
}


def _project(make_project, tests_yml: dict, data_tests: dict | None = None, rows=ROWS):
    return make_project(config={"sources": {"s": {"rows": rows}}},
                        models={**MODELS, "schema.yml": {"models": tests_yml}}, data_tests=data_tests)


def _passing_suite() -> list:
    return [
        {"name": "items",
         "tests": [{"expression": {"expression": "score between 1 and 5"}}],
         "columns": [
             {"name": "id", "tests": ["not_null", "unique"]},
             {"name": "kind", "tests": [{"accepted_values": {"values": ["keep", "drop", "flip"]}}]},
             {"name": "score", "tests": [{"accepted_range": {"min_value": 1, "max_value": 5}}]},
             {"name": "parent", "tests": [{"relationships": {"to": "ref('parents')", "field": "pid"}}]},
         ]},
    ]


def _test_lines(output: str) -> dict[str, str]:
    return {line.split()[1]: line.split()[0] for line in output.splitlines() if line.startswith("    ")}


def test_generic_tests_pass(make_project, run_cli):
    root = _project(make_project, _passing_suite())
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    lines = _test_lines(result.output)
    assert lines == {"expression_items": "PASS", "not_null_items_id": "PASS", "unique_items_id": "PASS",
                     "accepted_values_items_kind": "PASS", "accepted_range_items_score": "PASS",
                     "relationships_items_parent": "PASS"}
    assert "TESTS_PASSED=6 TESTS_FAILED=0" in result.output
    run_results = json.loads((root / "target/run_results.json").read_text())
    assert {t["name"]: t["status"] for t in run_results["tests"]}["unique_items_id"] == "pass"


@pytest.mark.parametrize("column, test, failures", [
    ("id", "not_null", 1),
    ("id", "unique", 1),
    ("kind", {"accepted_values": {"values": ["keep", "drop"]}}, 2),
    ("score", {"accepted_range": {"min_value": 2, "max_value": 4}}, 3),
    ("score", {"accepted_range": {"min_value": 1, "max_value": 5, "inclusive": False}}, 3),
    ("parent", {"relationships": {"to": "parents", "field": "pid"}}, 1),
])
def test_each_generic_test_finds_failures(make_project, run_cli, column, test, failures):
    rows = ROWS + [{"id": None, "kind": "weird", "score": 5, "parent": 99}, {"id": 1, "kind": "keep", "score": 3,
                                                                             "parent": 10}]
    root = _project(make_project, [{"name": "items", "columns": [{"name": column, "tests": [test]}]}], rows=rows)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    kind = test if isinstance(test, str) else next(iter(test))
    assert f"FAIL {kind}_items_{column} ({failures} failing row" in result.output


def test_error_severity_skips_dependents_warn_does_not(make_project, run_cli, query):
    failing = [{"name": "items", "tests": [{"expression": {"expression": "score < 5"}}]}]
    root = _project(make_project, failing)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert "FAIL expression_items (1 failing row)" in result.output
    assert "SKIP view downstream (upstream items failed)" in result.output
    assert query(root, "select count(*) from information_schema.tables where table_name = 'downstream'") == [(0,)]

    warned = [{"name": "items", "tests": [{"expression": {"expression": "score < 5", "severity": "warn"}}]}]
    root = _project(make_project, warned)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "WARN expression_items (1 failing row)" in result.output
    assert "TESTS_WARNED=1" in result.output
    assert query(root, "select n from downstream") == [(3,)]


def test_where_and_custom_name(make_project, run_cli):
    suite = [{"name": "items", "tests": [{"expression": {"expression": "score < 5", "where": "kind <> 'drop'",
                                                         "name": "scores_below_five"}}]}]
    result = run_cli("build", cwd=_project(make_project, suite))
    assert result.exit_code == EXIT_OK, result
    assert "PASS scores_below_five" in result.output


def test_singular_tests(make_project, run_cli):
    singular = {
        "no_orphans": "-- items whose parent is missing\nselect i.* from {{ ref('items') }} i\n"
                      "left join {{ ref('parents') }} p on p.pid = i.parent where p.pid is null\n-- the end",
        "few_drops": "{{ config(severity='warn') }}\nselect * from {{ ref('items') }} where kind = 'drop'",
    }
    root = _project(make_project, [], data_tests=singular)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert _test_lines(result.output) == {"no_orphans": "PASS", "few_drops": "WARN"}

    singular["no_orphans"] = "select * from {{ ref('items') }} where parent = 20"
    root = _project(make_project, [], data_tests=singular)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED
    assert "FAIL no_orphans (1 failing row)" in result.output


def test_prefclean_test_command(make_project, run_cli):
    root = _project(make_project, _passing_suite())
    assert run_cli("build", "--no-tests", cwd=root).exit_code == EXIT_OK
    result = run_cli("test", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "6 tests: 6 passed, 0 failed, 0 warned" in result.output

    suite = _passing_suite()
    suite[0]["tests"] = [{"expression": {"expression": "score < 3"}},
                         {"expression": {"expression": "score < 4", "severity": "warn", "name": "soft"}}]
    (root / "models/schema.yml").write_text(json.dumps({"models": suite}))
    result = run_cli("test", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert "FAIL expression_items (2 failing rows)" in result.output and "WARN soft (1 failing row)" in result.output
    assert "7 tests: 5 passed, 1 failed, 1 warned" in result.output
    result = run_cli("test", "-s", "parents", cwd=root)
    assert "1 tests: 1 passed" in result.output  # only the relationships test reads parents


def test_test_on_sql_error_is_reported(make_project, run_cli):
    suite = [{"name": "items", "tests": [{"expression": {"expression": "no_such_column > 1"}}]}]
    result = run_cli("build", cwd=_project(make_project, suite))
    assert result.exit_code == EXIT_FAILED
    assert "ERROR expression_items (" in result.output and "no_such_column" in result.output


@pytest.mark.parametrize("suite, expected", [
    ([{"name": "itemz", "columns": []}], "models/schema.yml: models[0] names unknown model 'itemz'"),
    ([{"name": "items", "columns": [{"name": "id", "tests": ["not_nul"]}]}], "unknown test 'not_nul'"),
    ([{"name": "items", "columns": [{"name": "id", "tests": [{"accepted_values": {}}]}]}],
     "model 'items' column id: accepted_values needs `values: [...]`"),
    ([{"name": "items", "tests": [{"expression": {"expression": "true", "severity": "fatal"}}]}],
     "severity must be error or warn"),
])
def test_malformed_test_yaml(make_project, run_cli, suite, expected):
    result = run_cli("build", cwd=_project(make_project, suite))
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("text, expected", [
    ("- just a list\n", "models/schema.yml: expected `models:` followed by a list"),
    ("models:\n  - name: items\n    columns: [id]\n", "model 'items': columns[0] needs `name:`"),
    ("models:\n  - name: items\n    tests: [{expression: [1, 2]}]\n", "the arguments of test expression must be a mapping"),
    ("models:\n  - name: items\n    tests: [{a: 1, b: 2}]\n", "a test must be a name or a one-key mapping"),
    ("models: [\n", "models/schema.yml line"),
])
def test_malformed_test_files_are_user_errors(make_project, run_cli, text, expected):
    root = make_project(config={"sources": {"s": {"rows": ROWS}}}, models={**MODELS, "schema.yml": text})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output and "Traceback" not in result.output


# dbt's forms: data_tests:, arguments:, config:, thresholds, store_failures, {% test %} blocks, tests/.

def _dbt_project(make_project, model_yml: dict, **files):
    return make_project(config={"sources": {"s": {"rows": ROWS}}},
                        models={**MODELS, "schema.yml": {"version": 2, "models": [{"name": "items", **model_yml}]}},
                        **files)


def test_data_tests_key_with_arguments_and_config_severity_warn(make_project, run_cli, query):
    root = _dbt_project(make_project, {"columns": [{"name": "kind", "data_tests": [
        {"accepted_values": {"arguments": {"values": ["keep", "drop"]}, "config": {"severity": "warn"}}}]}]})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "WARN accepted_values_items_kind (1 failing row)" in result.output
    assert query(root, "select n from downstream") == [(3,)]  # a warning skips nothing


def test_tests_and_data_tests_together_are_an_error(make_project, run_cli):
    root = _dbt_project(make_project, {"columns": [{"name": "id", "tests": ["unique"], "data_tests": ["not_null"]}]})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "model 'items' column id: has both `tests:` and `data_tests:`" in result.output


def test_where_config_filters_the_model_before_testing(make_project, run_cli):
    root = _dbt_project(make_project, {"columns": [{"name": "kind", "data_tests": [
        {"accepted_values": {"arguments": {"values": ["keep", "flip"]}, "config": {"where": "kind <> 'drop'"}}}]}]})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "PASS accepted_values_items_kind" in result.output


@pytest.mark.parametrize("config, status", [
    ({}, "FAIL"),                                         # dbt's defaults: any failing row fails
    ({"error_if": ">5", "warn_if": ">1"}, "WARN"),        # 2 failing rows
    ({"error_if": ">=2"}, "FAIL"),
    ({"error_if": ">5", "warn_if": ">5"}, "PASS"),
    ({"severity": "warn", "error_if": ">0"}, "WARN"),     # severity warn never fails
    ({"fail_calc": "count(*) - 2"}, "PASS"),              # 2 - 2 = 0
    ({"limit": 1, "error_if": ">1"}, "WARN"),             # only one row is counted
])
def test_error_if_and_warn_if_thresholds(make_project, run_cli, config, status):
    root = _dbt_project(make_project, {"data_tests": [{"expression": {"arguments": {"expression": "score < 3"},
                                                                      "config": config}}]})
    result = run_cli("build", cwd=root)
    assert f"{status} expression_items" in result.output, result
    assert result.exit_code == (EXIT_FAILED if status == "FAIL" else EXIT_OK), result


def test_store_failures_keeps_the_failing_rows_in_a_table(make_project, run_cli, query):
    root = _dbt_project(make_project, {"columns": [{"name": "kind", "data_tests": [
        {"accepted_values": {"values": ["keep"], "store_failures": True, "severity": "warn"}},
        {"not_null": {"config": {"store_failures": True, "alias": "null_ids"}}}]}]})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "WARN accepted_values_items_kind (2 failing rows; stored in \"main_dbt_test__audit\".\"accepted_values_items_kind\")" \
        in result.output
    assert query(root, "select id from main_dbt_test__audit.accepted_values_items_kind order by id") == [(2,), (3,)]
    assert query(root, "select count(*) from main_dbt_test__audit.null_ids") == [(0,)]  # passing tests store none
    assert run_cli("build", "--no-tests", cwd=root).exit_code == EXIT_OK
    result = run_cli("test", cwd=root)  # `prefclean test` stores them too (it opens the warehouse for writing)
    assert "2 tests: 1 passed, 0 failed, 1 warned" in result.output, result


def test_enabled_false_does_not_run_the_test(make_project, run_cli):
    root = _dbt_project(make_project, {"data_tests": [
        {"expression": {"expression": "score < 3", "config": {"enabled": False}}}]})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK and "expression_items" not in result.output, result


GENERIC_TESTS = """
{% test is_positive(model, column_name) %}
select * from {{ model }} where {{ column_name }} <= 0
{% endtest %}

{%- test at_least_rows(model, n=1) -%}
select count(*) as n from {{ model }} having count(*) < {{ n }}
{%- endtest -%}
"""


@pytest.mark.parametrize("where", ["macros/tests.sql", "tests/generic/tests.sql"])
def test_custom_generic_tests_from_test_blocks(make_project, run_cli, where):
    root = _dbt_project(make_project, {
        "data_tests": [{"at_least_rows": {"arguments": {"n": 3}}}, {"at_least_rows": {"n": 4, "name": "four"}}],
        "columns": [{"name": "score", "data_tests": ["is_positive"]},
                    {"name": "parent", "data_tests": [{"is_positive": {"config": {"where": "id > 1"}}}]}]},
        files={where: GENERIC_TESTS})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert _test_lines(result.output) == {"at_least_rows_items": "PASS", "four": "FAIL", "is_positive_items_score": "PASS",
                                          "is_positive_items_parent": "PASS"}


def test_a_test_block_replaces_a_builtin_and_can_ref_its_arguments(make_project, run_cli):
    blocks = ("{% test not_null(model, column_name) %}select 1 as always_fails{% endtest %}\n"
              "{% test in_parents(model, column_name, parents) %}\n"
              "select * from {{ model }} where {{ column_name }} not in (select pid from {{ parents }})\n{% endtest %}")
    root = _dbt_project(make_project, {"columns": [
        {"name": "id", "data_tests": ["not_null"]},
        {"name": "parent", "data_tests": [{"in_parents": {"arguments": {"parents": "ref('parents')"}}}]}]},
        macros={"tests": blocks})
    result = run_cli("build", cwd=root)
    assert "FAIL not_null_items_id (1 failing row)" in result.output and "PASS in_parents_items_parent" in result.output
    result = run_cli("test", "-s", "parents", cwd=root)  # the ref() in the argument makes it a test of parents too
    assert "1 tests: 1 passed" in result.output, result


def test_singular_tests_in_dbts_tests_folder(make_project, run_cli):
    root = _dbt_project(make_project, {}, files={
        "tests/no_big_scores.sql": "select * from {{ ref('items') }} where score > 4",
        "tests/assert/few_rows.sql": "{{ config(severity='warn', error_if='>10') }} select * from {{ ref('items') }}",
        "tests/generic/ignored_here.sql": "{% test unused(model) %}select 1{% endtest %}"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_FAILED, result
    assert _test_lines(result.output) == {"no_big_scores": "FAIL", "few_rows": "WARN"}


@pytest.mark.parametrize("model_yml, expected", [
    ({"columns": [{"name": "id", "data_tests": [{"not_null": {"config": {"database": "other"}}}]}]},
     "`database` is not supported by prefclean"),
    ({"columns": [{"name": "id", "data_tests": [{"not_null": {"config": {"severty": "warn"}}}]}]},
     "unknown key `severty`; did you mean `severity`?"),
    ({"columns": [{"name": "id", "data_tests": [{"not_null": {"arguments": {}, "colour": "red"}}]}]},
     "test not_null: unknown key `colour`"),
    ({"columns": [{"name": "id", "data_tests": [{"not_null": {"foo": 1}}]}]}, "not_null takes no argument `foo`"),
    ({"data_tests": [{"dbt_utils.expression_is_true": {"expression": "true"}}]},
     "`dbt_utils.expression_is_true`: tests from packages are not supported by prefclean"),
    ({"data_tests": ["not_null"]}, "not_null is a column test"),
    ({"data_tests": [{"expression": {"expression": "true", "error_if": "lots"}}]}, "`error_if: lots` should be a comparison"),
    ({"data_tests": [{"expression": {"expression": "true", "store_failures_as": "ephemeral"}}]},
     "`ephemeral` is not supported by prefclean"),
    ({"constraints": [{"type": "not_null"}]}, "model 'items': `constraints` is not supported by prefclean"),
    ({"versions": [{"v": 2}]}, "`versions` is not supported by prefclean"),
    ({"descripton": "x"}, "unknown key `descripton`; did you mean `description`?"),
    ({"columns": [{"name": "id", "constraints": []}]}, "column id: `constraints` is not supported by prefclean"),
    ({"columns": [{"name": "id", "quote": False}]}, "`quote: false` is not supported by prefclean"),
])
def test_dbt_test_forms_prefclean_rejects_name_themselves(make_project, run_cli, model_yml, expected):
    result = run_cli("build", cwd=_dbt_project(make_project, model_yml))
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("top, expected", [
    ({"sources": [{"name": "raw"}]}, "`sources` is not supported by prefclean (declare sources in prefclean.yml"),
    ({"exposures": []}, "`exposures` is not supported by prefclean"),
    ({"modles": []}, "unknown key `modles`; did you mean `models`?"),
])
def test_property_file_sections_prefclean_does_not_read_are_errors(make_project, run_cli, top, expected):
    root = make_project(config={"sources": {"s": {"rows": ROWS}}}, models={**MODELS, "schema.yml": {"version": 2, **top}})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output


def test_singular_test_config_where_is_refused(make_project, run_cli):
    root = _dbt_project(make_project, {}, files={
        "tests/t.sql": "{{ config(where='id > 1') }} select * from {{ ref('items') }}"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "tests/t.sql: `where` applies to generic tests only" in result.output


def test_prefclean_test_selects_tests_by_their_own_tags(make_project, run_cli):
    root = _dbt_project(make_project, {"columns": [
        {"name": "id", "tags": ["keys"], "data_tests": ["unique", {"not_null": {"config": {"tags": ["nightly"]}}}]},
        {"name": "kind", "data_tests": [{"accepted_values": {"values": ["keep", "drop", "flip"], "tags": "nightly"}}]}]})
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    result = run_cli("test", "-s", "tag:nightly", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert _test_lines(result.output) == {"not_null_items_id": "PASS", "accepted_values_items_kind": "PASS"}
    result = run_cli("test", "-s", "tag:keys", cwd=root)  # a column's tags go to its tests
    assert _test_lines(result.output) == {"unique_items_id": "PASS", "not_null_items_id": "PASS"}, result
    result = run_cli("test", "-s", "tag:nightly", "--exclude", "items", cwd=root)
    assert "0 tests" in result.output, result
    result = run_cli("test", "-s", "tag:weekly", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR and "matches no model" in result.output, result
