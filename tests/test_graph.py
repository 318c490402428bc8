"""The model DAG: order, cycles, --select operators, `prefclean ls`."""

from __future__ import annotations

import re

import pytest

from prefclean.errors import EXIT_USER_ERROR, GraphError
from prefclean.graph import Graph

#   a -> b -> d
#   a -> c -> d -> e ;  x (alone)
EDGES = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"], "x": []}


def test_topological_order_is_parents_first_and_reproducible():
    order = Graph(EDGES).order()
    assert order == ["a", "b", "c", "d", "e", "x"]
    for node, parents in EDGES.items():
        assert all(order.index(p) < order.index(node) for p in parents)


@pytest.mark.parametrize("selector, expected", [
    (["d"], ["d"]),
    (["+d"], ["a", "b", "c", "d"]),
    (["b+"], ["b", "d", "e"]),
    (["+b+"], ["a", "b", "d", "e"]),
    (["b", "x"], ["b", "x"]),
    (["c+,x"], []),                       # a comma is an intersection, as in dbt
    (["c+,+d"], ["c", "d"]),
    (["a+ x"], ["a", "b", "c", "d", "e", "x"]),  # a space is a union
    ([], ["a", "b", "c", "d", "e", "x"]),
    (["1+d"], ["b", "c", "d"]),
    (["d+1"], ["d", "e"]),
    (["a+1"], ["a", "b", "c"]),
    (["2+e"], ["b", "c", "d", "e"]),
    (["@b"], ["a", "b", "c", "d", "e"]),  # b, what follows it, and everything those need
    (["@e"], ["a", "b", "c", "d", "e"]),
    (["@x"], ["x"]),
    (["[bc]"], ["b", "c"]),  # names are globs
    (["*"], ["a", "b", "c", "d", "e", "x"]),
])
def test_select(selector, expected):
    assert Graph(EDGES).select(selector) == expected


def test_exclude_takes_out_what_it_matches():
    assert Graph(EDGES).select(["a+"], exclude=["d+"]) == ["a", "b", "c"]
    assert Graph(EDGES).select([], exclude=["x", "b,c"]) == ["a", "b", "c", "d", "e"]  # b,c: nothing is both


def _models():
    from types import SimpleNamespace as M

    return {"a": M(path="models/staging/a.sql", materialized="table", config={"tags": ["nightly", "raw"]}),
            "b": M(path="models/marts/b.sql", materialized="view", config={"tags": "nightly"}),
            "c": M(path="models/marts/c.sql", materialized="incremental", config={"unique_key": "id"}),
            "d": M(path="models/d.sql", materialized="view", config={"audit": True}),
            "e": M(path="models/e.sql", materialized="table", config={}),
            "x": M(path="models/x.sql", materialized="view", config={})}


@pytest.mark.parametrize("selector, expected", [
    ("tag:nightly", ["a", "b"]),
    ("tag:raw+", ["a", "b", "c", "d", "e"]),
    ("path:models/marts", ["b", "c"]),
    ("models/marts/c.sql", ["c"]),          # a path without the method, as in dbt
    ("models/staging", ["a"]),
    ("file:e.sql", ["e"]),
    ("config.materialized:table", ["a", "e"]),
    ("config.materialized:table,tag:nightly", ["a"]),
    ("config.unique_key:id", ["c"]),
    ("config.audit:true", ["d"]),
    ("tag:nightly config.materialized:incremental", ["a", "b", "c"]),
])
def test_select_by_method(selector, expected):
    assert Graph(EDGES, _models()).select([selector]) == expected


@pytest.mark.parametrize("selector, message", [
    ("tag:weekly", "--select 'tag:weekly' matches no model (tags in this project: nightly, raw)"),
    ("state:modified", "--select 'state:modified' needs --state DIR"),
    ("state:changed", "`state:changed` is not supported by prefclean (known: state:new, state:old, state:modified"),
    ("colour:red", "unknown selector method `colour:`"),
    ("@+b", "@ cannot be combined with +"),
    ("path:models/nowhere", "--select 'path:models/nowhere' matches no model"),
])
def test_selectors_that_cannot_work_are_errors(selector, message):
    with pytest.raises(GraphError, match=re.escape(message)):
        Graph(EDGES, _models()).select([selector])


def test_unknown_selector_suggests():
    with pytest.raises(GraphError, match="--select 'dd\\+' matches no model; did you mean 'd'"):
        Graph(EDGES).select(["dd+"])


def test_cycle_is_named():
    with pytest.raises(GraphError) as info:
        Graph({"a": ["c"], "b": ["a"], "c": ["b"], "z": []})
    message = str(info.value)
    assert message.startswith("models form a cycle: ")
    cycle = message.split(": ", 1)[1].split(" -> ")
    assert cycle[0] == cycle[-1] and sorted(cycle[:-1]) == ["a", "b", "c"]


def test_self_reference_is_a_cycle():
    with pytest.raises(GraphError, match="a -> a"):
        Graph({"a": ["a"]})


def _project(make_project):
    return make_project(models={
        "a": "select 1 as id",
        "b": "{{ config(tags=['t']) }} select * from {{ ref('a') }}",
        "c": "{{ config(materialized='table') }} select * from {{ ref('a') }}",
        "d": "select * from {{ ref('b') }} union all select * from {{ ref('c') }}",
        "sub/x": "{{ config(tags='t') }} select * from {{ source('s') }}",
    }, config={"sources": {"s": {"rows": [{"id": 1}]}}})


def _listed(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines() if line.strip()]


def test_ls_lists_in_run_order_with_dependencies(make_project, run_cli):
    root = _project(make_project)
    result = run_cli("ls", cwd=root)
    assert result.exit_code == 0, result
    assert _listed(result.output) == ["a", "b", "c", "d", "x"]
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert lines["c"].split()[1] == "table" and lines["d"].split()[1] == "view"
    assert lines["d"].rstrip().endswith("b, c") and lines["x"].rstrip().endswith("source:s")


@pytest.mark.parametrize("args, expected", [
    (["-s", "d"], ["d"]),
    (["-s", "+d"], ["a", "b", "c", "d"]),
    (["-s", "b+"], ["b", "d"]),
    (["-s", "+b+"], ["a", "b", "d"]),
    (["-s", "c", "-s", "x"], ["c", "x"]),
    (["-s", "c x"], ["c", "x"]),
    (["-s", "+d,+c"], ["a", "c"]),
    (["-s", "config.materialized:table"], ["c"]),
    (["-s", "tag:t"], ["b", "x"]),
    (["-s", "path:models/sub"], ["x"]),
])
def test_ls_select(make_project, run_cli, args, expected):
    result = run_cli("ls", *args, cwd=_project(make_project))
    assert result.exit_code == 0, result
    assert _listed(result.output) == expected


def test_build_select_builds_only_selected(make_project, run_cli, query):
    root = _project(make_project)
    result = run_cli("build", "-s", "+b", cwd=root)
    assert result.exit_code == 0, result
    built = {r[0] for r in query(root, "select table_name from information_schema.tables where table_schema = 'main'")}
    assert built == {"a", "b"}
    assert "1 of 2 OK view a" in result.output and "2 of 2 OK view b" in result.output


def test_cycle_in_project_is_refused(make_project, run_cli):
    root = make_project(models={"a": "select * from {{ ref('b') }}", "b": "select * from {{ ref('a') }}"})
    for command in ("ls", "compile", "build"):
        result = run_cli(command, cwd=root)
        assert result.exit_code == EXIT_USER_ERROR, result
        assert "models form a cycle: " in result.output
        assert "a -> b" in result.output or "b -> a" in result.output
    assert not (root / "target/prefclean.duckdb.wal").exists()


def test_fail_fast_skips_everything_after_the_first_failure(make_project, run_cli, relation_type):
    models = {"a_broken": "select no_such_column", "b_fine": "select 1 as id",
              "c_tested": "select null as id", "schema.yml": {"models": [
                  {"name": "c_tested", "columns": [{"name": "id", "data_tests": ["not_null"]}]}]},
              "d_after": "select 2 as id"}
    root = make_project(models=models)
    result = run_cli("build", cwd=root)
    assert result.exit_code == 1 and "OK view b_fine" in result.output and "OK view d_after" in result.output, result
    root = make_project(models=models)
    result = run_cli("build", "--fail-fast", cwd=root)
    assert result.exit_code == 1, result
    assert "2 of 4 SKIP view b_fine (--fail-fast: a_broken failed)" in result.output
    assert relation_type(root, "b_fine") is None
    root = make_project(models={**models, "a_broken": "select 0 as id"})
    result = run_cli("build", "-x", cwd=root)  # an error-severity test failing stops the build too
    assert "FAIL not_null_c_tested_id" in result.output
    assert "4 of 4 SKIP view d_after (--fail-fast: c_tested failed)" in result.output, result
