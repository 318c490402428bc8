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
