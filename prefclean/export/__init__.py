"""Exports: a model's table written to files, the Hugging Face Hub or Argilla. Each is atomic and reports
what it wrote. Exporters are found by target name (plugins), built-ins the same way as any other."""

from __future__ import annotations

import time
from typing import Callable

import duckdb

from .. import plugins
from ..config.base import did_you_mean
from ..errors import ExportError, PrefcleanError, ProjectError
from ..events import ExportFinished, Reporter, quiet
from ..project import ExportConfig, Project
from ..results import ExportRun
from ..warehouse import model_relation, relation, relation_kind

# An exporter gets the connection, the project, the export config and the model's relation name, and
# returns one line saying what it wrote.
Exporter = Callable[[duckdb.DuckDBPyConnection, Project, ExportConfig, str], str]


def run_export(con: duckdb.DuckDBPyConnection, project: Project, export: ExportConfig) -> str:
    exporter: Exporter = plugins.load(plugins.EXPORTERS, export.target, context=f"export '{export.name}': ",
                                      error=ExportError)
    schema, name = model_relation(con, export.model)  # (its `schema` / `alias` config may move it from main)
    if relation_kind(con, schema, name) is None:
        raise ExportError(f"export '{export.name}': model '{export.model}' has not been built (run `prefclean build`)")
    return exporter(con, project, export, relation(schema, name))


def run_exports(con: duckdb.DuckDBPyConnection, project: Project, names: list[str] | None,
                report: Reporter = quiet) -> list[ExportRun]:
    """Run the named exports (all when names is None); one failing export does not stop the others."""
    selected = list(project.exports) if not names else names
    unknown = [n for n in selected if n not in project.exports]
    if unknown:
        # the user's mistake (exit 2), like a model name a selector does not match
        hint = did_you_mean(unknown[0], project.exports, quote="'")
        raise ProjectError(f"no export named '{unknown[0]}' in prefclean.yml (known: "
                           f"{', '.join(project.exports) or 'none'}){hint}")
    runs = []
    for name in selected:
        export = project.exports[name]
        start = time.perf_counter()
        try:
            run = ExportRun(name, export.target, True, detail=run_export(con, project, export),
                            seconds=time.perf_counter() - start)
        except PrefcleanError as exc:
            run = ExportRun(name, export.target, False, error=str(exc), seconds=time.perf_counter() - start)
        runs.append(run)
        report(ExportFinished(run))
    return runs
