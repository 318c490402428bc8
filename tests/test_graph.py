"""The model DAG: order, cycles, --select operators, `prefclean ls`."""

from __future__ import annotations

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
    (["c+,x"], ["c", "d", "e", "x"]),
    (["a+ x"], ["a", "b", "c", "d", "e", "x"]),
    ([], ["a", "b", "c", "d", "e", "x"]),
])
def test_select(selector, expected):
    assert Graph(EDGES).select(selector) == expected


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
        "b": "select * from {{ ref('a') }}",
        "c": "{{ config(materialized='table') }} select * from {{ ref('a') }}",
        "d": "select * from {{ ref('b') }} union all select * from {{ ref('c') }}",
        "x": "select * from {{ source('s') }}",
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
