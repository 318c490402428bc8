"""The model DAG: topological order, cycle detection, and dbt-style selection (m, +m, m+, +m+)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from .errors import GraphError


class Graph:
    def __init__(self, parents: Mapping[str, Iterable[str]]):
        self.parents = {node: sorted(set(deps)) for node, deps in parents.items()}
        self.children: dict[str, list[str]] = {node: [] for node in self.parents}
        for node, deps in self.parents.items():
            for dep in deps:
                self.children.setdefault(dep, []).append(node)
        self._check_acyclic()

    def _check_acyclic(self) -> None:
        WHITE, GREY, BLACK = 0, 1, 2
        colour = {node: WHITE for node in self.parents}
        stack: list[str] = []

        def visit(node: str) -> None:
            colour[node] = GREY
            stack.append(node)
            for dep in self.parents.get(node, []):
                if colour.get(dep, BLACK) == GREY:
                    cycle = stack[stack.index(dep):] + [dep]
                    raise GraphError("models form a cycle: " + " -> ".join(reversed(cycle)))
                if colour.get(dep) == WHITE:
                    visit(dep)
            stack.pop()
            colour[node] = BLACK

        for node in sorted(self.parents):
            if colour[node] == WHITE:
                visit(node)

    def order(self, nodes: Iterable[str] | None = None) -> list[str]:
        """Topological order (parents first), ties broken by name so runs are reproducible."""
        wanted = set(self.parents if nodes is None else nodes)
        indegree = {n: sum(1 for p in self.parents[n] if p in wanted) for n in wanted}
        ready = sorted(n for n, d in indegree.items() if d == 0)
        out: list[str] = []
        while ready:
            node = ready.pop(0)
            out.append(node)
            for child in self.children.get(node, []):
                if child in indegree:
                    indegree[child] -= 1
                    if indegree[child] == 0:
                        ready.append(child)
                        ready.sort()
        return out

    def ancestors(self, node: str) -> set[str]:
        return self._walk(node, self.parents)

    def descendants(self, node: str) -> set[str]:
        return self._walk(node, self.children)

    @staticmethod
    def _walk(node: str, edges: Mapping[str, list[str]]) -> set[str]:
        seen: set[str] = set()
        todo = list(edges.get(node, []))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(edges.get(n, []))
        return seen

    def select(self, selectors: Iterable[str] | None) -> list[str]:
        """Models matched by selectors, in run order. None or empty selects everything."""
        selectors = [s for sel in (selectors or []) for s in sel.replace(",", " ").split()]
        if not selectors:
            return self.order()
        chosen: set[str] = set()
        for selector in selectors:
            name = selector.strip("+")
            if name not in self.parents:
                close = difflib.get_close_matches(name, list(self.parents), n=1, cutoff=0.5)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise GraphError(f"--select '{selector}' matches no model{hint}")
            chosen.add(name)
            if selector.startswith("+"):
                chosen |= self.ancestors(name)
            if selector.endswith("+"):
                chosen |= self.descendants(name)
        return self.order(chosen)
