"""dbt's unit_tests: given rows in, expected rows out, run before the model in `prefclean build` and by
`prefclean test`; against real DuckDB files through the CLI."""

from __future__ import annotations

import pytest

from prefclean.errors import EXIT_FAILED, EXIT_OK, EXIT_USER_ERROR

ROWS = [{"id": 1, "score": 5, "note": "a"}, {"id": 2, "score": 1, "note": "b"}]
MODELS = {
    "stg": "{{ config(materialized='table') }} select * from {{ source('s') }}",
    "decisions": "{{ config(materialized='table') }}\nselect id, case when score >= {{ var('keep_min', 3) }} "
                 "then 'keep' else 'drop' end as decision from {{ ref('stg') }}",
    "after": "select count(*) as n from {{ ref('decisions') }}",
}
PASSING = {"name": "scores_decide", "model": "decisions",
           "given": [{"input": "ref('stg')", "rows": [{"id": 10, "score": 4}, {"id": 11, "score": 2}]}],
           "expect": {"rows": [{"id": 11, "decision": "drop"}, {"id": 10, "decision": "keep"}]}}


def _project(make_project, *unit_tests, models=None):
    return make_project(config={"sources": {"s": {"rows": ROWS}}},
                        models={**MODELS, **(models or {}), "unit.yml": {"version": 2, "unit_tests": list(unit_tests)}})


def test_a_passing_unit_test_runs_before_its_model(make_project, run_cli, query):
    root = _project(make_project, PASSING)
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    lines = result.output.splitlines()
    unit = next(i for i, line in enumerate(lines) if "PASS scores_decide" in line)
    model = next(i for i, line in enumerate(lines) if "OK table decisions" in line)
    assert unit < model, result.output  # the given rows, not the real stg rows: it does not need stg's data
    assert query(root, "select id, decision from decisions order by id") == [(1, "keep"), (2, "drop")]


def test_a_failing_unit_test_keeps_the_model_and_says_which_rows_differ(make_project, run_cli, query):
    root = _project(make_project)
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    wrong = {**PASSING, "expect": {"rows": [{"id": 10, "decision": "keep"}, {"id": 11, "decision": "keep"}]}}
    root2 = _project(make_project, wrong, models={"decisions": MODELS["decisions"].replace(">=", ">")})
    (root2 / "target").mkdir(exist_ok=True)
    (root2 / "target/prefclean.duckdb").write_bytes((root / "target/prefclean.duckdb").read_bytes())
    result = run_cli("build", cwd=root2)
    assert result.exit_code == EXIT_FAILED, result
    assert "FAIL scores_decide (2 differing rows (expected, not returned: id=11, decision='keep'; " \
           "returned, not expected: id=11, decision='drop'))" in result.output
    assert "SKIP view after (upstream decisions failed)" in result.output
    assert query(root2, "select id, decision from decisions order by id") == [(1, "keep"), (2, "drop")]


def test_overrides_csv_rows_and_prefclean_test(make_project, run_cli):
    csv_test = {"name": "strict_threshold", "model": "decisions", "overrides": {"vars": {"keep_min": 5}},
                "given": [{"input": "ref('stg')", "format": "csv", "rows": "id,score\n1,5\n2,4\n"}],
                "expect": {"format": "csv", "rows": "id,decision\n1,keep\n2,drop\n"}}
    root = _project(make_project, PASSING, csv_test)
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    result = run_cli("test", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "PASS scores_decide" in result.output and "PASS strict_threshold" in result.output


INCREMENTAL = """{{ config(materialized='incremental', unique_key='id') }}
select id, score from {{ source('s') }}
{% if is_incremental() %}where id > (select max(id) from {{ this }}){% endif %}
"""


def test_incremental_models_with_this_and_is_incremental(make_project, run_cli):
    unit = {"name": "only_new_rows", "model": "inc", "overrides": {"macros": {"is_incremental": True}},
            "given": [{"input": "source('s')", "rows": [{"id": 1, "score": 1}, {"id": 7, "score": 2}]},
                      {"input": "this", "rows": [{"id": 5}]}],
            "expect": {"rows": [{"id": 7, "score": 2}]}}
    root = _project(make_project, unit, models={"inc": INCREMENTAL})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert "PASS only_new_rows" in result.output


@pytest.mark.parametrize("unit, expected", [
    ({**PASSING, "given": []}, "give rows for every input of model 'decisions'; missing: ref('stg')"),
    ({**PASSING, "model": "decisionz"}, "`model: decisionz` names no model; did you mean 'decisions'?"),
    ({**PASSING, "given": PASSING["given"] + [{"input": "ref('after')", "rows": []}]},
     "model 'decisions' does not read ref('after')"),
    ({**PASSING, "given": [{"input": "ref('stg')", "fixture": "stg_rows"}]},
     "`fixture` is not supported by prefclean"),
    ({**PASSING, "given": [{"input": "stg", "rows": []}]}, "input 'stg' should be ref('model')"),
    ({**PASSING, "versions": {"include": [2]}}, "`versions` is not supported by prefclean"),
    ({k: v for k, v in PASSING.items() if k != "expect"}, "needs `expect:`"),
    ({**PASSING, "overrides": {"macro": {}}}, "unknown key `macro`; did you mean `macros`?"),
    ({**PASSING, "given": [{"input": "this", "rows": []}, *PASSING["given"]]}, "input `this` is for incremental models"),
])
def test_unit_test_mistakes_are_user_errors(make_project, run_cli, unit, expected):
    result = run_cli("build", cwd=_project(make_project, unit))
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "models/unit.yml: unit" in result.output and expected in result.output


def test_an_expected_column_the_model_lacks_is_named(make_project, run_cli):
    unit = {**PASSING, "expect": {"rows": [{"id": 10, "verdict": "keep"}]}}
    result = run_cli("build", cwd=_project(make_project, unit))
    assert result.exit_code == EXIT_FAILED, result
    assert "ERROR scores_decide" in result.output and "expected column(s) verdict are not in the output" in result.output
