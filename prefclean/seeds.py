"""Seeds as in dbt: seeds/**/*.csv, each a table named after its file, loaded by `prefclean seed` and `build`
and read with ref(). Config (`column_types`, `delimiter`, ...) comes from a property file's `seeds:` section;
columns without a type are detected by DuckDB's CSV reader, among the types dbt would give them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CompileError

if TYPE_CHECKING:
    from .compiler import Model
    from .project import Project


# What a column without `column_types` may be detected as: dbt's (agate's) types as dbt-duckdb writes them.
# Whole numbers are INTEGER where they fit (BIGINT where dbt's INTEGER would overflow); a time of day stays text.
TYPE_CANDIDATES = ("BOOLEAN", "INTEGER", "BIGINT", "DOUBLE", "DATE", "TIMESTAMP", "VARCHAR")


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def discover_seeds(project: "Project") -> dict[str, Path]:
    """name -> path (relative to the project) of every seeds/**/*.csv."""
    folder = project.root / "seeds"
    seeds: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.csv")) if folder.exists() else []:
        rel = path.relative_to(project.root)
        if path.stem in seeds:
            raise CompileError(f"two seeds are named '{path.stem}': {seeds[path.stem]} and {rel}")
        seeds[path.stem] = rel
    return seeds


def seed_sql(project: "Project", model: "Model") -> str:
    """The SELECT that reads the seed's file: header row, dbt's `column_types` as DuckDB types."""
    options = ["header = true", f"auto_type_candidates = [{', '.join(map(_literal, TYPE_CANDIDATES))}]"]
    types = model.config.get("column_types") or {}
    if types:
        options.append("types = {" + ", ".join(f"{_literal(c)}: {_literal(t)}" for c, t in types.items()) + "}")
    if model.config.get("delimiter"):
        options.append(f"delim = {_literal(model.config['delimiter'])}")
    path = (project.root / model.path).resolve()
    return f"select * from read_csv({_literal(str(path))}, {', '.join(options)})"
