"""Rendering models: ref/source/var/config/this/is_incremental, macros, compile output, compile errors."""

from __future__ import annotations

import pytest

from prefclean.compiler import Compiler
from prefclean.errors import EXIT_USER_ERROR, CompileError
from prefclean.project import load_project

SOURCES = {"sources": {"pairs": {"rows": [{"id": 1, "q": "a"}, {"id": 2, "q": "b"}]}}, "vars": {"limit": 5}}


def _compile(root):
    compiler = Compiler(load_project(root))
    return compiler, compiler.parse_all()


def test_ref_source_var_config_this(make_project):
    root = make_project(config=SOURCES, models={
        "base": "{{ config(materialized='table') }}\nselect * from {{ source('pairs') }} limit {{ var('limit') }}",
        "sub/child": "{{ config(materialized='incremental', unique_key='id', tags=['x']) }}\n"
                     "select *, '{{ this }}' as me, {{ var('missing', 3) }} as dflt from {{ ref('base') }}",
    })
    _, models = _compile(root)
    base, child = models["base"], models["child"]
    assert base.compiled_sql == 'select * from "sources"."pairs" limit 5'
    assert base.materialized == "table" and base.sources == {"pairs"} and base.refs == set()
    assert child.materialized == "incremental" and child.unique_key == "id" and child.config["tags"] == ["x"]
    assert child.refs == {"base"} and str(child.path) == "models/sub/child.sql"
    assert '\'"main"."child"\' as me, 3 as dflt from "main"."base"' in child.compiled_sql
    assert models["base"].checksum != models["child"].checksum


def test_is_incremental_only_when_rendering_incrementally(make_project):
    template = ("{{ config(materialized='incremental', unique_key='id') }}\nselect 1 as id\n"
                "{% if is_incremental() %}where id not in (select id from {{ this }}){% endif %}")
    root = make_project(models={"inc": template, "view_m": template.replace("'incremental'", "'view'")})
    compiler, models = _compile(root)
    assert "where" not in models["inc"].compiled_sql
    assert compiler.render(models["inc"], incremental=True).endswith('where id not in (select id from "main"."inc")')
    assert "where" not in compiler.render(models["view_m"], incremental=True)  # only incremental models


def test_project_macros_and_builtin_macros(make_project):
    root = make_project(
        config={"vars": {"suffix": "_v"}},
        macros={"util": "{% macro cents(col) %}({{ col }} * 100)::bigint{% endmacro %}\n"
                        "{% macro tagged(name) %}'{{ name }}{{ var('suffix') }}'{% endmacro %}",
                "nested/more": "{% macro twice(x) %}{{ x }} + {{ x }}{% endmacro %}"},
        models={"m": "select {{ cents('price') }} as c, {{ tagged('a') }} as t, {{ twice(2) }} as two, "
                     "{{ rating_of('j', 'o', 'chosen') }} as r from (select 1.5 as price, {'ratings': [4, 2]} as j, "
                     "['chosen', 'rejected'] as o)"},
    )
    _, models = _compile(root)
    sql = models["m"].compiled_sql
    assert "(price * 100)::bigint as c" in sql and "'a_v' as t" in sql and "2 + 2 as two" in sql
    assert "j.ratings[list_position(o, 'chosen')]" in sql  # the built-in macro from prefclean/macros


def test_project_macro_replaces_builtin(make_project):
    root = make_project(macros={"mine": "{% macro rating_of(a, b, c) %}42{% endmacro %}"},
                        models={"m": "select {{ rating_of('j', 'o', 'chosen') }} as r"})
    assert _compile(root)[1]["m"].compiled_sql == "select 42 as r"


def test_ephemeral_models_are_inlined_even_when_nested(make_project, run_cli, query):
    root = make_project(config=SOURCES, models={
        "e1": "{{ config(materialized='ephemeral') }}\nselect id, q from {{ source('pairs') }}\n-- trailing comment",
        "e2": "{{ config(materialized='ephemeral') }}\nselect id * 10 as id from {{ ref('e1') }}",
        "final": "{{ config(materialized='table') }}\nselect sum(id) as s from {{ ref('e2') }}",
    })
    _, models = _compile(root)
    assert '"main"."e1"' not in models["final"].compiled_sql and '"main"."e2"' not in models["final"].compiled_sql
    result = run_cli("build", "--select", "final", cwd=root)  # e1's source is staged though only final is selected
    assert result.exit_code == 0, result
    assert query(root, "select s from final") == [(30,)]
    assert query(root, "select count(*) from information_schema.tables where table_name in ('e1', 'e2')") == [(0,)]


def test_compile_writes_target_compiled(make_project, run_cli):
    root = make_project(config=SOURCES, models={"a": "select * from {{ source('pairs') }}",
                                                "staging/b": "select * from {{ ref('a') }} where id > {{ var('limit') }}"})
    result = run_cli("compile", "--vars", '{"limit": 9}', cwd=root)
    assert result.exit_code == 0, result
    assert "compiled target/compiled/models/staging/b.sql" in result.output
    compiled = (root / "target/compiled/models/staging/b.sql").read_text()
    assert compiled.strip() == 'select * from "main"."a" where id > 9'
    assert (root / "target/compiled/models/a.sql").exists()
    assert (root / "target/manifest.json").exists()
    assert not (root / "target/prefclean.duckdb").exists()  # compiling touches no data


@pytest.mark.parametrize("models, expected", [
    ({"a": "select 1", "b": "select * from {{ ref('aa') }}"},
     "model 'b' (models/b.sql): ref('aa') names no model; did you mean 'a'?"),
    ({"a": "select * from {{ source('pair') }}"},
     "model 'a' (models/a.sql): source('pair') is not in prefclean.yml; did you mean 'pairs'?"),
    ({"a": "select {{ var('nope') }}"}, "model 'a' (models/a.sql): var('nope') is not set and has no default"),
    ({"a": "select 1\n\n{% if x %}"}, "models/a.sql:3: Jinja syntax error"),
    ({"a": "{{ config(materialized='tabel') }} select 1"}, "materialized='tabel' is not one of"),
    ({"a": "{{ config(materialized='table') }}"}, "model 'a' (models/a.sql) renders to empty SQL"),
    ({"a": "select {{ nope() }}"}, "model 'a' (models/a.sql): 'nope' is undefined"),
    ({"x/a": "select 1", "y/a": "select 2"}, "two models are named 'a': models/x/a.sql and models/y/a.sql"),
])
def test_compile_errors_name_model_and_file(make_project, run_cli, models, expected):
    root = make_project(config=SOURCES, models=models)
    with pytest.raises(CompileError) as info:
        _compile(root)
    assert expected in str(info.value)
    result = run_cli("compile", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert expected in result.output and "Traceback" not in result.output


def test_macro_syntax_error_names_macro_file(make_project, run_cli):
    root = make_project(macros={"bad": "{% macro m() %}\n{{ oops( }}\n{% endmacro %}"}, models={"a": "select 1"})
    result = run_cli("compile", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert "macros/bad.sql:2: Jinja syntax error" in result.output


# dbt's Jinja context: relations, env_var, target, log, run_query, return, exceptions, adapter.dispatch.

def test_ref_source_and_this_are_relations_with_dbts_attributes(make_project):
    root = make_project(config=SOURCES, models={
        "base": "select 1 as id",
        "child": "select '{{ this.identifier }}|{{ this.schema }}|{{ this.database }}' as me, "
                 "'{{ ref('base').identifier }}|{{ source('pairs').schema }}|{{ source('pairs').name }}' as other, "
                 "* from {{ ref('base') }}",
    })
    _, models = _compile(root)
    assert models["child"].compiled_sql == ("select 'child|main|prefclean' as me, 'base|sources|pairs' as other, "
                                            '* from "main"."base"')


def test_env_var_with_and_without_default(make_project, monkeypatch):
    monkeypatch.setenv("PREFCLEAN_TEST_REGION", "eu")
    monkeypatch.delenv("PREFCLEAN_TEST_UNSET", raising=False)
    root = make_project(models={"m": "select '{{ env_var('PREFCLEAN_TEST_REGION') }}' as r, "
                                     "'{{ env_var('PREFCLEAN_TEST_UNSET', 'none') }}' as d"})
    _, models = _compile(root)
    assert models["m"].compiled_sql == "select 'eu' as r, 'none' as d"


@pytest.mark.parametrize("template, expected", [
    ("select '{{ env_var('PREFCLEAN_TEST_UNSET') }}'",
     "model 'm' (models/m.sql): env_var('PREFCLEAN_TEST_UNSET') is not set and has no default"),
    ("select '{{ env_var('HF_TOKEN', 'x') }}'", "env_var('HF_TOKEN') looks like a secret"),
    ("select '{{ env_var('DBT_ENV_SECRET_PW', 'x') }}'", "looks like a secret"),
    ("select * from {{ ref('base', v=2) }}", "ref('base', v=2): model versions are not supported by prefclean"),
    ("select * from {{ ref('base', version=1) }}", "model versions are not supported by prefclean"),
    ("{{ exceptions.raise_compiler_error('the rows are not ready') }}",
     "model 'm' (models/m.sql): the rows are not ready"),
    ("select {{ adapter.dispatch('nowhere')() }}", "adapter.dispatch('nowhere') found neither duckdb__nowhere nor "
                                                  "default__nowhere"),
    ("select '{{ target.colour }}'", "has no attribute 'colour'"),
])
def test_context_errors_are_one_line_user_errors(make_project, run_cli, monkeypatch, template, expected):
    monkeypatch.delenv("PREFCLEAN_TEST_UNSET", raising=False)
    root = make_project(models={"base": "select 1 as id", "m": template})
    result = run_cli("compile", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert expected in result.output and "Traceback" not in result.output


def test_target_log_and_modules(make_project, run_cli):
    root = make_project(models={"m": "{{ log('rendering m', info=True) }}select '{{ target.name }}' as t, "
                                     "'{{ target.type }}' as ty, '{{ target.schema }}' as s, "
                                     "{{ modules.datetime.date(2024, 1, 2).year }} as y"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert result.output.count("log (m): rendering m") == 1  # once, though a model renders more than once
    compiled = (root / "target/compiled/models/m.sql").read_text()
    assert compiled.strip() == "select 'dev' as t, 'duckdb' as ty, 'main' as s, 2024 as y"


MACROS_WITH_RETURN = """
{% macro kinds() %}{{ return(['a', 'b']) }}{% endmacro %}
{% macro kind_count() %}{% set k = kinds() %}{{ return(k | length) }}{% endmacro %}
{% macro duckdb__greeting() %}'hello from duckdb'{% endmacro %}
{% macro default__greeting() %}'hello'{% endmacro %}
{% macro default__farewell() %}'bye'{% endmacro %}
"""


def test_return_and_adapter_dispatch(make_project):
    root = make_project(macros={"m": MACROS_WITH_RETURN}, models={"m": (
        "select {% for k in kinds() %}'{{ k }}' as {{ k }}, {% endfor %}{{ kind_count() }} as n, "
        "{{ adapter.dispatch('greeting', 'my_project')() }} as g, {{ adapter.dispatch('farewell')() }} as f")})
    _, models = _compile(root)
    assert models["m"].compiled_sql == "select 'a' as a, 'b' as b, 2 as n, 'hello from duckdb' as g, 'bye' as f"


RUN_QUERY = """{{ config(materialized='table') }}
{% set result = run_query("select max(id) as top, count(*) as n from " ~ ref('base')) %}
{% if execute %}
select {{ result.columns[0].values()[0] }} as top, {{ result.rows[0]['n'] }} as n, {{ result | length }} as r
{% else %}
select -1 as top, -1 as n, -1 as r
{% endif %}
"""


def test_run_query_sees_parents_built_in_the_same_run(make_project, run_cli, query):
    root = make_project(config=SOURCES, models={
        "base": "{{ config(materialized='table') }} select * from {{ source('pairs') }}", "stats": RUN_QUERY})
    result = run_cli("build", cwd=root)  # a fresh warehouse: base exists only once this run built it
    assert result.exit_code == 0, result
    assert query(root, "select top, n, r from stats") == [(2, 2, 1)]
    assert "select 2 as top, 2 as n, 1 as r" in (root / "target/compiled/models/stats.sql").read_text()
    result = run_cli("compile", cwd=root)  # compiling runs no query: `execute` is false, as at dbt's parse time
    assert result.exit_code == 0, result
    assert "select -1 as top" in (root / "target/compiled/models/stats.sql").read_text()


def test_run_query_errors_name_the_model(make_project, run_cli):
    root = make_project(models={"m": "{% set r = run_query('select * from nowhere') %}select 1 as x"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == 1, result
    assert "model 'm' (models/m.sql): run_query failed: Catalog Error" in result.output
