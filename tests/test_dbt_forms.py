"""An adversarial pass over what a dbt user writes: each form either works as in dbt, or exits 2 with one line
naming it. Nothing dbt-shaped is accepted and ignored."""

from __future__ import annotations

import pytest

from prefclean.errors import EXIT_OK, EXIT_USER_ERROR

NOT_DBT = "select 1 as id"


def _yml(models=None, **top):
    return {"version": 2, **({"models": models} if models else {}), **top}


# (id, prefclean.yml keys, files, command, what the one line says)
REFUSED = [
    ("dbt_project key profile", {"profile": "shop"}, {}, ["compile"], "unknown top-level key `profile`"),
    ("dbt_project key config-version", {"config-version": 2}, {}, ["compile"], "unknown top-level key `config-version`"),
    ("dbt_project key model-paths", {"model-paths": ["models"]}, {}, ["compile"],
     "unknown top-level key `model-paths`"),
    ("dbt_project key quoting", {"quoting": {"identifier": True}}, {}, ["compile"], "unknown top-level key `quoting`"),
    ("dbt_project key dispatch", {"dispatch": [{"macro_namespace": "dbt_utils"}]}, {}, ["compile"],
     "unknown top-level key `dispatch`"),
    ("dbt_project key data_tests", {"data_tests": {"+severity": "warn"}}, {}, ["compile"],
     "unknown top-level key `data_tests`"),
    ("dbt_project key snapshots", {"snapshots": {"+target_schema": "s"}}, {}, ["compile"],
     "unknown top-level key `snapshots`"),
    ("dbt_project key flags", {"flags": {"fail_fast": True}}, {}, ["compile"], "unknown top-level key `flags`"),
    ("+persist_docs wrong shape", {"models": {"+persist_docs": {"relations": True}}}, {}, ["compile"],
     "models.+persist_docs: `persist_docs` should be {relation: true/false, columns: true/false}"),
    ("+docs show false", {"models": {"+docs": {"show": False}}}, {}, ["compile"],
     "models.+docs: `docs` is not supported by prefclean"),
    ("+grants", {"models": {"+grants": {"select": ["r"]}}}, {}, ["compile"], "`grants` is not supported by prefclean"),
    ("+contract wrong shape", {"models": {"+contract": True}}, {}, ["compile"],
     "`contract` should be {enforced: true/false}"),
    ("+quoting", {"models": {"+quoting": {"identifier": True}}}, {}, ["compile"],
     "models.+quoting: `quoting` is not supported by prefclean"),
    ("seeds +quote_columns", {"seeds": {"+quote_columns": True}}, {}, ["compile"],
     "seeds.+quote_columns: `quote_columns` is not supported by prefclean"),
    ("source freshness", {"sources": {"s": {"type": "inline", "rows": [{"a": 1}], "freshness": {"warn_after": {}}}}},
     {}, ["compile"], "unknown key `sources.s.freshness`"),
    ("source loaded_at_field", {"sources": {"s": {"type": "inline", "rows": [{"a": 1}], "loaded_at_field": "x"}}}, {},
     ["compile"], "unknown key `sources.s.loaded_at_field`"),
    ("profiles.yml", {}, {"profiles.yml": "shop: {}\n"}, ["compile"], "profiles.yml is not read by prefclean"),
    ("selectors.yml", {}, {"selectors.yml": "selectors: []\n"}, ["compile"], "selectors.yml is not read by prefclean"),
    ("packages.yml", {}, {"packages.yml": "packages: []\n"}, ["compile"], "packages.yml is not read by prefclean"),
    ("analyses folder", {}, {"analyses/a.sql": "select 1"}, ["compile"],
     "analyses/a.sql: analyses/ is not supported by prefclean"),
    ("snapshots folder", {}, {"snapshots/s.sql": "{% snapshot s %}select 1{% endsnapshot %}"}, ["compile"],
     "snapshots/s.sql: snapshots/ is not supported by prefclean"),
    ("python model", {}, {"models/py_model.py": "def model(dbt, session):\n    return None\n"}, ["compile"],
     "models/py_model.py: Python models are not supported by prefclean"),
    ("property-file sources", {}, {"models/s.yml": _yml(sources=[{"name": "raw", "loaded_at_field": "at",
                                                                   "tables": [{"name": "t"}]}])},
     ["compile"], "models/s.yml: `sources` is not supported by prefclean (declare sources in prefclean.yml"),
    ("exposures", {}, {"models/s.yml": _yml(exposures=[{"name": "e"}])}, ["compile"],
     "`exposures` is not supported by prefclean"),
    ("metrics", {}, {"models/s.yml": _yml(metrics=[{"name": "e"}])}, ["compile"], "`metrics` is not supported"),
    ("semantic_models", {}, {"models/s.yml": _yml(semantic_models=[{"name": "e"}])}, ["compile"],
     "`semantic_models` is not supported"),
    ("column constraints", {}, {"models/s.yml": _yml([{"name": "m", "columns": [
        {"name": "id", "constraints": [{"type": "not_null"}]}]}])}, ["compile"],
     "model 'm' column id: `constraints` is not supported by prefclean"),
    ("model versions", {}, {"models/s.yml": _yml([{"name": "m", "versions": [{"v": 1}]}])}, ["compile"],
     "model 'm': `versions` is not supported by prefclean"),
    ("model docs", {}, {"models/s.yml": _yml([{"name": "m", "docs": {"show": False}}])}, ["compile"],
     "model 'm': `docs` is not supported by prefclean"),
    ("contract without data_type", {}, {"models/s.yml": _yml([{"name": "m", "config": {"contract": {"enforced": True}},
                                                                "columns": [{"name": "id"}]}])},
     ["compile"], "model 'm' (models/m.sql): an enforced contract needs a data_type for every column; missing for id"),
    ("contract on an incremental model", {}, {"models/s.yml": _yml([{"name": "m", "config": {
        "contract": {"enforced": True}, "materialized": "incremental"}, "columns": [{"name": "id", "data_type": "int"}]}])},
     ["compile"], "an enforced contract is supported by prefclean on tables and views only"),
    ("constraints with a contract", {}, {"models/s.yml": _yml([{"name": "m", "config": {"contract": {"enforced": True}},
                                                                 "constraints": [{"type": "check"}]}])},
     ["compile"], "`constraints` is not supported by prefclean"),
    ("config(quoting)", {}, {"models/c.sql": "{{ config(quoting={'identifier': true}) }} select 1 as x"},
     ["compile"], "`quoting` is not supported by prefclean"),
    ("config(grants)", {}, {"models/c.sql": "{{ config(grants={'select': ['r']}) }} select 1 as x"}, ["compile"],
     "`grants` is not supported by prefclean"),
    ("config positional text", {}, {"models/c.sql": "{{ config('table') }} select 1 as x"}, ["compile"],
     "config() takes key=value arguments, or one mapping"),
    ("config.require unset", {}, {"models/c.sql": "{{ config.require('unique_key') }} select 1 as x"}, ["compile"],
     "config.require('unique_key'): `unique_key` is not set"),
    ("invocation_id", {}, {"models/c.sql": "select '{{ invocation_id }}' as x"}, ["compile"],
     "'invocation_id' is undefined (part of dbt's Jinja context that prefclean does not offer)"),
    ("flags", {}, {"models/c.sql": "select {{ flags.FULL_REFRESH }} as x"}, ["compile"], "'flags' is undefined"),
    ("statement blocks", {}, {"models/c.sql": "{% call statement('x', fetch_result=True) %}select 1{% endcall %}"
                                             " select 1 as x"}, ["compile"], "'statement' is undefined"),
    ("materialization blocks", {}, {"macros/mat.sql": "{% materialization lake, adapter='duckdb' %}{% endmaterialization %}"},
     ["compile"], "Encountered unknown tag 'materialization'"),
    ("ref to a package model version", {}, {"models/c.sql": "select * from {{ ref('m', v=2) }}"}, ["compile"],
     "model versions are not supported by prefclean"),
    ("source: selector", {}, {}, ["ls", "-s", "source:raw"], "the `source:` selector is not supported by prefclean"),
    ("resource_type:test", {}, {}, ["ls", "-s", "resource_type:test"], "prefclean's nodes are models and seeds"),
    ("test_type: selector", {}, {}, ["ls", "-s", "test_type:generic"], "the `test_type:` selector is not supported"),
    ("result: selector", {}, {}, ["ls", "-s", "result:error"], "the `result:` selector is not supported"),
    ("exposure: selector", {}, {}, ["ls", "-s", "exposure:x"], "the `exposure:` selector is not supported"),
    ("state:modified.vars", {}, {}, ["ls", "-s", "state:modified.vars", "--state", "target"],
     "`state:modified.vars` is not supported by prefclean (a var change that changes a model's SQL is "
     "state:modified.body)"),
    ("--selector", {}, {}, ["ls", "--selector", "nightly"], "No such option '--selector'"),
    ("--defer", {}, {}, ["build", "--defer"], "No such option '--defer'"),
    ("--empty", {}, {}, ["build", "--empty"], "No such option '--empty'"),
    ("--resource-type", {}, {}, ["ls", "--resource-type", "model"], "No such option '--resource-type'"),
    ("ls --output name", {}, {}, ["ls", "--output", "name"], "'name' is not one of 'text', 'json'"),
    ("dbt run", {}, {}, ["run"], "No such command 'run'"),
    ("--vars not a mapping", {"vars": {"a": 1}}, {}, ["compile", "--vars", "[1, 2"],
     "--vars is not valid YAML/JSON: expected ',' or ']'"),
    ("--vars undeclared", {"vars": {"a": 1}}, {}, ["compile", "--vars", "{b: 2}"], "`b` is not declared under `vars:`"),
]


@pytest.mark.parametrize("config, files, command, expected", [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])
def test_a_dbt_form_prefclean_lacks_exits_2_with_one_line_naming_it(make_project, run_cli, config, files, command,
                                                                   expected):
    root = make_project(config=config, models={"m": NOT_DBT}, files=files)
    if "--state" in command:
        (root / "target").mkdir(exist_ok=True)
        (root / "target" / "manifest.json").write_text('{"models": {}}')
    result = run_cli(*command, cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output, result
    assert result.exception is None and "Traceback" not in result.output
    if command[0] != "run" and "No such" not in expected and "is not one of" not in expected:
        assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result


@pytest.mark.parametrize("template, compiled", [
    ("{{ config({'materialized': 'table', 'tags': ['a']}) }} select 1 as x", "select 1 as x"),
    ("{{ config(materialized='table') }} select '{{ config.get('materialized') }}' as m, "
     "'{{ config.get('unique_key', 'none') }}' as k", "select 'table' as m, 'none' as k"),
    ("{{ config(unique_key='id', materialized='incremental') }} select '{{ config.require('unique_key') }}' as k",
     "select 'id' as k"),
    ("select '{{ tojson({'a': [1, 2]}) }}' as j, {{ fromjson('[1, 2]') | length }} as n, "
     "{{ (fromyaml('a: 3')).a }} as y", "select '{\"a\": [1, 2]}' as j, 2 as n, 3 as y"),
    ("select '{{ local_md5('x') }}' as h, {{ set([1, 1, 2]) | length }} as n, '{{ project_name }}' as p",
     "select '9dd4e461268c8034f5c8564e155c67a6' as h, 2 as n, 'proj' as p"),
    ("select {% for a, b in zip([1, 2], [3, 4]) %}{{ a * b }}{{ ', ' if not loop.last }}{% endfor %}", "select 3, 8"),
])
def test_dbt_forms_that_work_as_in_dbt(make_project, run_cli, template, compiled):
    root = make_project(models={"c": template})
    result = run_cli("compile", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert (root / "target/compiled/models/c.sql").read_text().strip() == compiled


def test_config_get_sees_folder_and_property_file_config(make_project, run_cli):
    root = make_project(config={"models": {"+tags": ["nightly"]}}, models={
        "c": "select '{{ config.get('tags') | join(',') }}' as t, '{{ config.get('materialized') }}' as m",
        "props.yml": {"version": 2, "models": [{"name": "c", "config": {"materialized": "table"}}]}})
    assert run_cli("compile", cwd=root).exit_code == EXIT_OK
    assert (root / "target/compiled/models/c.sql").read_text().strip() == "select 'nightly' as t, 'table' as m"


@pytest.mark.parametrize("form", ['{"a": 2}', "{a: 2}", "a: 2"])
def test_vars_in_every_form_dbt_takes(make_project, run_cli, form):
    root = make_project(config={"vars": {"a": 1}}, models={"c": "select {{ var('a') }} as a"})
    assert run_cli("compile", "--vars", form, cwd=root).exit_code == EXIT_OK
    assert (root / "target/compiled/models/c.sql").read_text().strip() == "select 2 as a"


def test_plus_m_plus_selects_both_directions(make_project, run_cli):
    root = make_project(models={"a": "select 1 as x", "b": "select * from {{ ref('a') }}",
                                "c": "select * from {{ ref('b') }}", "d": "select 2 as y"})
    result = run_cli("ls", "-s", "+b+", cwd=root)
    assert [line.split()[0] for line in result.output.splitlines()] == ["a", "b", "c"], result


CONTRACT = {"version": 2, "models": [{"name": "c", "config": {"contract": {"enforced": True}, "materialized": "table"},
                                      "columns": [{"name": "id", "data_type": "int"},
                                                  {"name": "label", "data_type": "text"}]}]}


def test_an_enforced_contract_builds_in_its_column_order_and_a_mismatch_fails_naming_each(make_project, run_cli, query):
    root = make_project(models={"c": "select 'a' as label, 1 as id", "props.yml": CONTRACT})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_OK, result
    assert query(root, "select column_name, data_type from information_schema.columns where table_name = 'c' "
                       "order by ordinal_position") == [("id", "INTEGER"), ("label", "VARCHAR")]
    (root / "models/c.sql").write_text("select 1.5 as id, 'a' as label, 2 as extra")
    result = run_cli("build", cwd=root)
    assert result.exit_code == 1, result
    assert ("its enforced contract does not match its query (extra: not in the contract; id: the query gives "
            "DECIMAL(2,1), the contract says INTEGER); the previous version is kept") in result.output, result
    assert query(root, "select id, label from c") == [(1, "a")]
