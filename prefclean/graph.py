"""The model DAG: topological order, cycle detection, and dbt's selection syntax (names and globs, +m, 2+m, m+1, @m,\ntag:, path:, file:, config.KEY:, state:, unions, intersections, excludes)."""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

from .errors import GraphError
from .state import state_matches


class Graph:
    def __init__(self, parents: Mapping[str, Iterable[str]], models: Mapping[str, Any] | None = None,
                 state: Mapping[str, Any] | None = None):
        self.models = models  # name -> Model, for tag:, path: and config.KEY: selectors
        self.state = state  # a previous manifest's models (--state DIR), for state:
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

    def select(self, selectors: Iterable[str] | None, exclude: Iterable[str] | None = None,
               models: Mapping[str, Any] | None = None) -> list[str]:
        """Models matched by dbt-style selectors, in run order; None or empty selects everything.

        Space-separated selectors (and repeated -s) are a union, comma-joined ones an intersection; what
        `exclude` matches is taken out. `models` (name -> Model) answers tag:, path: and config.KEY:."""
        models = self.models if models is None else models
        chosen = set(self.parents) if not _words(selectors) else self._match(_words(selectors), models, "--select")
        if _words(exclude):
            chosen -= self._match(_words(exclude), models, "--exclude")
        return self.order(chosen)

    def _match(self, words: list[str], models: Mapping[str, Any] | None, flag: str) -> set[str]:
        out: set[str] = set()
        for word in words:
            parts = [self._atom(part, word, models, flag) for part in word.split(",") if part]
            out |= set.intersection(*parts) if parts else set()
        return out

    def _atom(self, text: str, word: str, models: Mapping[str, Any] | None, flag: str) -> set[str]:
        match = _ATOM.match(text)
        if not match:
            raise GraphError(f"{flag} '{word}': cannot read '{text}' (expected [@][N+]method:value[+N])")
        at, up, method, value, down = match.group("at", "up", "method", "value", "down")
        if at and (up or down):
            raise GraphError(f"{flag} '{word}': @ cannot be combined with + (dbt does not allow it either)")
        found = self._method(method or "", value, word, models, flag)
        result = set(found)
        for node in found:
            if up is not None:
                result |= self._walk(node, self.parents, int(up[:-1]) if up[:-1] else None)
            if down is not None:
                result |= self._walk(node, self.children, int(down[1:]) if down[1:] else None)
            if at:
                for child in self._walk(node, self.children, None) | {node}:
                    result |= {child} | self._walk(child, self.parents, None)
        return result

    def _method(self, method: str, value: str, word: str, models: Mapping[str, Any] | None, flag: str) -> set[str]:
        names = list(self.parents)
        if not method and ("/" in value or value.endswith(".sql")):
            method = "path"
        if method in ("", "fqn"):
            found = {n for n in names if fnmatch.fnmatchcase(n, value)}
            if not found:
                close = difflib.get_close_matches(value, names, n=1, cutoff=0.5)
                raise GraphError(f"{flag} '{word}' matches no model" + (f"; did you mean '{close[0]}'?" if close else ""))
            return found
        if method == "state" and models is not None:  # nothing modified is an answer, not a typo: no error
            return state_matches(dict(models), self.state, value, word, flag)
        if method in _UNSUPPORTED_METHODS:
            raise GraphError(f"{flag} '{word}': the `{method}:` selector is not supported by prefclean"
                             + _UNSUPPORTED_METHODS[method])
        if models is None or method not in ("tag", "path", "file", "resource_type") and not method.startswith("config."):
            known = "tag:, path:, file:, config.KEY:, resource_type:, state:, fqn:"
            raise GraphError(f"{flag} '{word}': unknown selector method `{method}:` (known: {known})")
        if method == "tag":
            found = {n for n in names if any(fnmatch.fnmatchcase(t, value) for t in _tags(models[n]))}
            known = sorted({t for n in names for t in _tags(models[n])})
            hint = f" (tags in this project: {', '.join(known)})" if known else " (no model has tags)"
        elif method == "resource_type":
            if value not in ("model", "seed"):
                raise GraphError(f"{flag} '{word}': prefclean's nodes are models and seeds (no {value})")
            found = {n for n in names if getattr(models[n], "resource_type", "model") == value}
            hint = ""
        elif method in ("path", "file"):
            want = value.rstrip("/")
            found = {n for n in names if _path_matches(str(models[n].path), want, method == "file")}
            hint = ""
        else:
            key = method[len("config."):]
            found = {n for n in names if _config_value(models[n], key) is not None
                     and _config_matches(_config_value(models[n], key), value)}
            hint = ""
        if not found:
            raise GraphError(f"{flag} '{word}' matches no model{hint}")
        return found

    @staticmethod
    def _walk(node: str, edges: Mapping[str, list[str]], depth: int | None = None) -> set[str]:
        seen: set[str] = set()
        frontier, level = [node], 0
        while frontier and (depth is None or level < depth):
            level += 1
            nxt = []
            for n in frontier:
                for m in edges.get(n, []):
                    if m not in seen:
                        seen.add(m)
                        nxt.append(m)
            frontier = nxt
        seen.discard(node)
        return seen


_ATOM = re.compile(r"^(?P<at>@)?(?P<up>\d*\+)?(?:(?P<method>[a-z_]+(?:\.[A-Za-z_][A-Za-z0-9_]*)?):)?"
                   r"(?P<value>[^+:@]+?)(?P<down>\+\d*)?$")
_UNSUPPORTED_METHODS = {
    "source": "; select the models that read it, e.g. `+m`", "package": "", "exposure": "",
    "metric": "", "result": "", "source_status": "", "group": "", "access": "", "version": "", "test_type": "",
    "test_name": "", "unit_test": "", "semantic_model": "", "saved_query": "",
}


def _words(selectors: Iterable[str] | None) -> list[str]:
    return [w for sel in (selectors or []) for w in sel.split()]


def _tags(model: Any) -> list[str]:
    tags = model.config.get("tags") or []
    return [tags] if isinstance(tags, str) else [str(t) for t in tags]


def _path_matches(path: str, want: str, file_only: bool) -> bool:
    if file_only:
        return PurePosixPath(path).name in (want, f"{want}.sql")
    path = path.replace("\\", "/")
    return path == want or path.startswith(want + "/") or fnmatch.fnmatchcase(path, want)


def _config_value(model: Any, key: str) -> Any:
    return model.materialized if key == "materialized" else model.config.get(key)


def _config_matches(have: Any, want: str) -> bool:
    if isinstance(have, (list, tuple)):
        return any(_config_matches(h, want) for h in have)
    if isinstance(have, bool):
        return str(have).lower() == want.lower()
    return str(have) == want
