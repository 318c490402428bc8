"""Build models in dependency order with atomic materializations, and record what happened."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Callable

import duckdb

from .artifacts import ModelResult, record_run, write_manifest, write_run_results
from .compiler import Compiler, Model
from .errors import ModelError, PrefcleanError
from .graph import Graph
from .materializations import materialize
from .project import Project
from .sources import stage_source
from .udf import RunContext, all_udfs, register_udfs, start_warm_ups
from .warehouse import connect

Reporter = Callable[[str], None]


@dataclass
class BuildOptions:
    select: list[str] = field(default_factory=list)
    full_refresh: bool = False
    run_tests: bool = True
    run_exports: bool = True
    fail_fast: bool = False  # stop at the first failed model or error-severity test; the rest is skipped
    options: dict = field(default_factory=dict)  # passed to UDFs (judge overrides, refresh_judgments...)


def load_graph(project: Project, connection=None) -> tuple[Compiler, Graph]:
    compiler = Compiler(project, connection)
    models = compiler.parse_all()
    return compiler, Graph({name: m.refs for name, m in models.items()}, models)


def stage_sources(con, project: Project, names: set[str], *, force: bool, report: Reporter) -> None:
    for name in sorted(names):
        start = time.perf_counter()
        rows, staged = stage_source(con, project, project.sources[name], force=force)
        verb = "staged" if staged else "up to date"
        report(f"source {name} {verb}: {rows} rows in {time.perf_counter() - start:.2f}s")


DEFAULT_MEMORY_LIMIT = "1GB"


def bound_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Cap DuckDB's memory so big models spill to disk (next to the warehouse) instead of growing with the data.

    DuckDB's own default is 80% of RAM: a million pairs then took 4 GB for the cleaning joins alone. Set
    PREFCLEAN_MEMORY_LIMIT (a DuckDB size such as 8GB) to give a build more."""
    limit = os.environ.get("PREFCLEAN_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
    try:
        con.execute(f"set memory_limit = '{limit.replace(chr(39), '')}'")
    except duckdb.Error:
        raise PrefcleanError(f"PREFCLEAN_MEMORY_LIMIT is {limit!r}: expected a size such as 2GB or 512MB") from None


class Build:
    """One `prefclean build`: sources, models (with their data tests), exports, artifacts."""

    def __init__(self, project: Project, options: BuildOptions, report: Reporter = print):
        override = options.options.get("judge_override")
        if override:  # models can see it (var('judge_override')), e.g. to re-judge rows judged by another judge
            project = replace(project, vars={**project.vars, "judge_override": override})
        if options.options.get("refresh_judgments"):  # var('refresh_judgments'): incremental models re-judge every row
            project = replace(project, vars={**project.vars, "refresh_judgments": True})
        self.project, self.options, self.report = project, options, report
        self.run_id = uuid.uuid4().hex[:12]
        self.udfs = all_udfs(project)
        self.ctx = RunContext(project=project, options=dict(options.options))
        start_warm_ups(self.udfs, self.ctx)
        con = None
        try:
            self.con = con = connect(project.warehouse)
            bound_memory(con)
            self.compiler, self.graph = load_graph(project, con)
            self.selected = self.graph.select(options.select)
        except BaseException:  # a compile error must not leave the warehouse open (and locked), nor what a
            if con is not None:  # warm-up opened (one that finishes later opens nothing: see RunContext.lock)
                con.close()
            self.ctx.close()
            raise
        self.results: list[ModelResult] = []

    def run(self) -> list[ModelResult]:
        start = time.perf_counter()
        con = self.con
        try:
            self.ctx.options["connection_path"] = str(self.project.warehouse)
            register_udfs(con, self.udfs, self.ctx)
            models = self.compiler.models
            # Sources of ephemeral parents count too: their SQL is inlined into the selected models.
            inlined = {a for n in self.selected for a in self.graph.ancestors(n) if models[a].materialized == "ephemeral"}
            needed_sources = set().union(set(), *(models[n].sources for n in set(self.selected) | inlined))
            stage_sources(con, self.project, needed_sources, force=self.options.full_refresh, report=self.report)
            self.compiler.write_compiled(self.project.target_dir)
            write_manifest(self.project.target_dir, self.project, models, self.graph)
            self._run_models(con)
            record_run(con, self.run_id, self.results)
        finally:
            self.ctx.close()
            self.elapsed = time.perf_counter() - start
            self.write_results()
        return self.results

    def write_results(self, extra: dict | None = None) -> None:
        write_run_results(self.project.target_dir, self.run_id, "build", self.results, self.elapsed,
                          {**self.ctx.summary(), **(extra or {})})

    def close(self) -> None:
        self.ctx.close()  # (run() closes it too; closing twice does nothing)
        self.con.close()

    def _run_models(self, con) -> None:
        failed: set[str] = set()
        total = len(self.selected)
        for index, name in enumerate(self.selected, 1):
            model = self.compiler.models[name]
            prefix = f"{index} of {total}"
            blocked = [p for p in model.refs if p in failed]
            if failed and self.options.fail_fast:
                self._record(ModelResult(name, "skipped", model.materialized, message="--fail-fast: a model or test failed"),
                             f"{prefix} SKIP {model.materialized} {name} (--fail-fast: {', '.join(sorted(failed))} failed)")
                continue
            if blocked:
                failed.add(name)
                self._record(ModelResult(name, "skipped", model.materialized, message=f"upstream failed: {', '.join(sorted(blocked))}"),
                             f"{prefix} SKIP {model.materialized} {name} (upstream {', '.join(sorted(blocked))} failed)")
                continue
            self.ctx.options["model"] = name
            start = time.perf_counter()
            try:
                rows = materialize(con, self.compiler, model, full_refresh=self.options.full_refresh,
                                   notes=self.ctx.notes)
            except KeyboardInterrupt:
                self._record(ModelResult(name, "error", model.materialized, message="interrupted"),
                             f"{prefix} INTERRUPTED {model.materialized} {name}: previous version kept")
                raise
            except PrefcleanError as exc:
                fatal = self.ctx.state.pop("fatal_error", None)  # a judge that cannot start: its own words
                if fatal:
                    exc = ModelError(f"model '{name}' failed: {fatal}")
                failed.add(name)
                self._record(ModelResult(name, "error", model.materialized, seconds=time.perf_counter() - start, message=str(exc),
                                         compiled_path=str(self.compiler.compiled_path(model))),
                             f"{prefix} ERROR {model.materialized} {name}: {exc}")
                continue
            seconds = time.perf_counter() - start
            result = ModelResult(name, "success", model.materialized, rows=rows, seconds=round(seconds, 4),
                                 compiled_path=str(self.compiler.compiled_path(model)), notes=self.ctx.take_notes())
            self._record(result, f"{prefix} OK {model.materialized} {name} ... "
                                 f"{'done' if rows is None else f'{rows} rows'} in {seconds:.2f}s")
            for note in result.notes:
                self.report(f"    {note}")
            if self.after_model is not None and not self.after_model(con, model, result):
                failed.add(name)
                self.test_failed = True

    # Data tests hook: called after each successful model; returns False when an error-severity test failed.
    after_model: Callable | None = None
    elapsed: float = 0.0

    def _record(self, result: ModelResult, line: str) -> None:
        self.results.append(result)
        self.report(line)

    test_failed = False

    @property
    def failed(self) -> bool:
        return self.test_failed or any(r.status == "error" for r in self.results)
