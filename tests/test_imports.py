"""prefclean/ has no import cycle: a module-level import never leads back to the module that made it.

Read from the source (AST), not by importing: an import inside a function runs later and is allowed; one
under `if TYPE_CHECKING:` never runs. `from . import x` depends on module x when x is a module, else on the
package's __init__ (whose namespace it reads)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "prefclean"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(body: list[ast.stmt]):
    """Import statements that run when the module is imported (not in functions, not TYPE_CHECKING-only)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not is_type_checking(node.test):
                yield from runtime_imports(node.body)
            yield from runtime_imports(node.orelse)
        elif isinstance(node, (ast.Try, ast.With)):
            for block in (node.body, *(h.body for h in getattr(node, "handlers", [])),
                          getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                yield from runtime_imports(block)
        elif isinstance(node, ast.ClassDef):  # a class body runs at import
            yield from runtime_imports(node.body)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, set())
        for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in files)
                continue
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target not in files:
                continue
            for alias in node.names:
                edges.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in files else target)
        edges.discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_prefclean_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_check_sees_a_cycle_through_a_package_init_and_ignores_type_checking_imports(tmp_path):
    pkg = tmp_path / "prefclean"
    (pkg / "export").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "export" / "__init__.py").write_text("from .files import write\nREGISTRY = {}\n")
    (pkg / "export" / "files.py").write_text("from . import REGISTRY\n\ndef write():\n    from .. import later\n")
    (pkg / "later.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .export import files\n")
    (pkg / "a.py").write_text("import prefclean.b\n")
    (pkg / "b.py").write_text("try:\n    from .a import x\nexcept ImportError:\n    pass\n")
    graph = import_graph(pkg)
    assert graph["prefclean.later"] == set()
    assert cycles(graph) == [["prefclean.a", "prefclean.b"], ["prefclean.export", "prefclean.export.files"]]
