"""What the last build left in target/: manifest, run results and summary, and the model graph laid out.

The files are read on every request so the dashboard shows a build that finished while it was open.
A missing or half-written file reads as None: the pages then say to run `prefclean build`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_AUDIT_MODEL = "pair_decisions"


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class TargetFiles:
    manifest: dict | None
    run_results: dict | None
    summary: dict | None

    @classmethod
    def load(cls, target_dir: Path) -> "TargetFiles":
        return cls(read_json(target_dir / "manifest.json"), read_json(target_dir / "run_results.json"),
                   read_json(target_dir / "summary.json"))

    @property
    def audit_model(self) -> str:
        """The model declared with config(audit=true): the one with a decision per pair."""
        for name, model in ((self.manifest or {}).get("models") or {}).items():
            if (model.get("config") or {}).get("audit"):
                return name
        return (self.summary or {}).get("model") or DEFAULT_AUDIT_MODEL

    def results_by_model(self) -> dict[str, dict]:
        return {r.get("model"): r for r in (self.run_results or {}).get("results") or [] if isinstance(r, dict)}

    def build_status(self) -> dict | None:
        """The last run in a few numbers: when, how long, how many models per status, and what failed."""
        rr = self.run_results
        if not rr:
            return None
        counts: dict[str, int] = {}
        for r in self.results_by_model().values():
            counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
        problems = [r for r in self.results_by_model().values() if r.get("status") not in ("success",)]
        return {"run_id": rr.get("run_id"), "command": rr.get("command"), "generated_at": rr.get("generated_at"),
                "elapsed_seconds": rr.get("elapsed_seconds"), "counts": counts, "problems": problems,
                "ok": not any(r.get("status") == "error" for r in problems)}


@dataclass
class Node:
    name: str
    kind: str  # model | source
    x: float = 0.0
    y: float = 0.0
    status: str | None = None
    rows: int | None = None
    materialized: str | None = None
    seconds: float | None = None
    message: str = ""
    description: str = ""  # the manifest's (property file, {% docs %} blocks): on hover and in the table


@dataclass
class Lineage:
    nodes: list[Node] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)  # SVG path data, one per dependency
    width: int = 0
    height: int = 0


NODE_W, NODE_H, GAP_X, GAP_Y = 170, 52, 40, 40


def lineage(files: TargetFiles) -> Lineage | None:
    """Lay the graph out in columns: a node sits one column right of its deepest parent."""
    models = (files.manifest or {}).get("models")
    if not models:
        return None
    results = files.results_by_model()
    nodes: dict[str, Node] = {}
    parents: dict[str, list[str]] = {}
    for name, m in models.items():
        deps = m.get("depends_on") or {}
        r = results.get(name, {})
        nodes[name] = Node(name, "model", status=r.get("status"), rows=r.get("rows"), seconds=r.get("seconds"),
                           materialized=m.get("materialized"), message=r.get("message") or "",
                           description=str(m.get("description") or ""))
        parents[name] = [d for d in deps.get("models", []) if d in models]
        for s in deps.get("sources", []):
            key = f"source:{s}"
            nodes.setdefault(key, Node(s, "source", materialized="source"))
            parents.setdefault(key, [])
            parents[name].append(key)
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: tuple = ()) -> int:
        if name not in depth:
            depth[name] = 0 if name in seen else 1 + max((depth_of(p, seen + (name,)) for p in parents.get(name, [])),
                                                          default=-1)
        return depth[name]

    columns: dict[int, list[str]] = {}
    declared = list(files.manifest.get("order") or [])
    order = declared + sorted(set(nodes) - set(declared))  # sources are not in the run order
    for name in order:
        if name in nodes:
            columns.setdefault(depth_of(name), []).append(name)
    for col, names in columns.items():
        for row, name in enumerate(names):
            nodes[name].x = 10 + col * (NODE_W + GAP_X)
            nodes[name].y = 10 + row * (NODE_H + GAP_Y)
    out = Lineage(nodes=[nodes[n] for n in order if n in nodes])
    out.edges = [_edge(nodes[p], nodes[c]) for c, ps in parents.items() for p in ps]
    out.width = 20 + len(columns) * (NODE_W + GAP_X) - GAP_X
    out.height = 20 + max(len(v) for v in columns.values()) * (NODE_H + GAP_Y)
    return out


def _edge(a: Node, b: Node) -> str:
    """A curve from a's right side to b's left; edges that skip columns dip under the nodes they pass."""
    x1, y1, x2, y2 = a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2
    if x2 - x1 <= GAP_X + 1:
        return f"M{x1},{y1} C{x1 + GAP_X / 2},{y1} {x2 - GAP_X / 2},{y2} {x2},{y2}"
    low = max(a.y, b.y) + NODE_H + GAP_Y * 0.6
    return f"M{x1},{y1} C{x1 + GAP_X},{y1} {x1 + GAP_X / 2},{low} {x1 + GAP_X * 1.5},{low} " \
           f"L{x2 - GAP_X * 1.5},{low} C{x2 - GAP_X / 2},{low} {x2 - GAP_X},{y2} {x2},{y2}"
