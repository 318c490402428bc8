"""What state:modified compares, as dbt does: a model's body, its config, its relation, the macros it calls
(directly, through other macros or adapter.dispatch), a seed's file contents and the sources it reads; and
state:old / state:unmodified."""

from __future__ import annotations

import shutil

import pytest

from prefclean.errors import EXIT_OK

MACROS = {
    "money": "{% macro to_dollars(c) -%}{{ return(adapter.dispatch('to_dollars')(c)) }}{%- endmacro %}\n"
             "{% macro default__to_dollars(c) -%}({{ c }} / 100.0){%- endmacro %}\n"
             "{% macro unused() -%}1{%- endmacro %}\n",
    "noop": "{% macro note() -%}{%- endmacro %}\n",
}
MODELS = {
    "priced": "select {{ to_dollars('cents') }} as dollars from {{ ref('raw_prices') }}",
    "noted": "{{ note() }} select 1 as x",
    "plain": "select 2 as y",
    "read": "select * from {{ source('rows') }}",
}
CONFIG = {"sources": {"rows": {"type": "inline", "rows": [{"a": 1}]}}}


def _saved(make_project, run_cli, tmp_path):
    root = make_project(config=CONFIG, models=MODELS, macros=MACROS, files={"seeds/raw_prices.csv": "cents\n150\n"})
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    state = tmp_path / "state"
    shutil.copytree(root / "target", state, ignore=shutil.ignore_patterns("*.duckdb*"))
    return root, state


def _listed(run_cli, root, state, selector) -> list[str]:
    result = run_cli("ls", "-s", selector, "--state", state, cwd=root)
    assert result.exit_code == EXIT_OK, result
    return [line.split()[0] for line in result.output.splitlines() if line.strip()]


def test_a_changed_macro_marks_the_models_that_call_it_even_when_their_sql_is_the_same(make_project, run_cli, tmp_path):
    root, state = _saved(make_project, run_cli, tmp_path)
    (root / "macros/noop.sql").write_text("{% macro note() -%}{# now documented #}{%- endmacro %}\n")
    assert _listed(run_cli, root, state, "state:modified.macros") == ["noted"]
    assert _listed(run_cli, root, state, "state:modified.body") == []  # the compiled SQL did not change
    assert _listed(run_cli, root, state, "state:modified") == ["noted"]


def test_a_macro_reached_through_adapter_dispatch_counts_and_an_unused_one_does_not(make_project, run_cli, tmp_path):
    root, state = _saved(make_project, run_cli, tmp_path)
    text = MACROS["money"]
    (root / "macros/money.sql").write_text(text.replace("{% macro unused() -%}1", "{% macro unused() -%}2"))
    assert _listed(run_cli, root, state, "state:modified") == []
    (root / "macros/money.sql").write_text(text.replace("/ 100.0", "/ 100.00"))
    assert _listed(run_cli, root, state, "state:modified.macros") == ["priced"]


def test_a_changed_seed_file_is_a_modified_body(make_project, run_cli, tmp_path):
    root, state = _saved(make_project, run_cli, tmp_path)
    (root / "seeds/raw_prices.csv").write_text("cents\n150\n275\n")
    assert _listed(run_cli, root, state, "state:modified.body") == ["raw_prices"]
    assert _listed(run_cli, root, state, "state:modified+") == ["raw_prices", "priced"]


def test_a_changed_source_definition_marks_the_models_that_read_it(make_project, run_cli, tmp_path):
    root, state = _saved(make_project, run_cli, tmp_path)
    (root / "prefclean.yml").write_text((root / "prefclean.yml").read_text().replace("a: 1", "a: 2"))
    assert _listed(run_cli, root, state, "state:modified.sources") == ["read"]
    assert _listed(run_cli, root, state, "state:modified") == ["read"]


def test_a_changed_alias_is_a_modified_relation(make_project, run_cli, tmp_path):
    root, state = _saved(make_project, run_cli, tmp_path)
    (root / "models/plain.sql").write_text("{{ config(alias='plain_v2') }} select 2 as y")
    assert _listed(run_cli, root, state, "state:modified.relation") == ["plain"]
    assert _listed(run_cli, root, state, "state:modified.configs") == ["plain"]


@pytest.mark.parametrize("selector, expected", [
    ("state:old", ["raw_prices", "noted", "plain", "priced", "read"]),
    ("state:unmodified", ["raw_prices", "noted", "priced", "read"]),
    ("state:new", ["fresh"]),
])
def test_state_old_and_unmodified(make_project, run_cli, tmp_path, selector, expected):
    root, state = _saved(make_project, run_cli, tmp_path)
    (root / "models/plain.sql").write_text("select 3 as y")
    (root / "models/fresh.sql").write_text("select 4 as z")
    assert sorted(_listed(run_cli, root, state, selector)) == sorted(expected)


def test_persist_docs_writes_comments_and_a_changed_description_is_modified_persisted_descriptions(
        make_project, run_cli, tmp_path, query):
    props = {"version": 2, "models": [{"name": "plain", "description": "two", "config": {
        "persist_docs": {"relation": True, "columns": True}}, "columns": [{"name": "y", "description": "the y"}]}]}
    root = make_project(config=CONFIG, models={**MODELS, "props.yml": props}, macros=MACROS,
                        files={"seeds/raw_prices.csv": "cents\n150\n"})
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    assert query(root, "select comment from duckdb_views() where view_name = 'plain'") == [("two",)]
    assert query(root, "select comment from duckdb_columns() where table_name = 'plain'") == [("the y",)]
    state = tmp_path / "state"
    shutil.copytree(root / "target", state, ignore=shutil.ignore_patterns("*.duckdb*"))
    props["models"][0]["columns"][0]["description"] = "the y, again"
    (root / "models/props.yml").write_text(__import__("yaml").safe_dump(props))
    assert _listed(run_cli, root, state, "state:modified.persisted_descriptions") == ["plain"]
    assert _listed(run_cli, root, state, "state:modified.body") == []


def test_a_changed_contract_data_type_is_modified_contract(make_project, run_cli, tmp_path):
    props = {"version": 2, "models": [{"name": "plain", "config": {"contract": {"enforced": True}},
                                       "columns": [{"name": "y", "data_type": "integer"}]}]}
    root = make_project(config=CONFIG, models={**MODELS, "props.yml": props}, macros=MACROS,
                        files={"seeds/raw_prices.csv": "cents\n150\n"})
    assert run_cli("build", cwd=root).exit_code == EXIT_OK
    state = tmp_path / "state"
    shutil.copytree(root / "target", state, ignore=shutil.ignore_patterns("*.duckdb*"))
    assert _listed(run_cli, root, state, "state:modified.contract") == []
    props["models"][0]["columns"][0]["data_type"] = "bigint"
    (root / "models/props.yml").write_text(__import__("yaml").safe_dump(props))
    assert _listed(run_cli, root, state, "state:modified.contract") == ["plain"]
