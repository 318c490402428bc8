"""Build models in dependency order with atomic materializations, and record what happened."""

from __future__ import annotations

import importlib
import sys
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb

from .artifacts import record_run, write_manifest, write_run_results
from .compiler import Compiler
from .datatests import load_tests, run_test
from .config.base import did_you_mean
from .errors import ModelError, PrefcleanError, ProjectError
from .events import LeftoversRemoved, ModelFinished, ModelStarted, Reporter, SourceStaged, TestFinished, quiet
from .graph import Graph
from .state import load_state
from .interrupts import watch_interrupts
from .materializations import materialize
from .memory import bound_memory
from .project import Project
from .results import JudgeRun, ModelRun, TestRun
from .sources import check_source_columns, stage_source
from .udf import RunContext, RunOptions, all_udfs, register_udfs, start_warm_ups
from .unread_vars import unread_vars_warning
from .warehouse import connect, drop_leftovers, relation_kind, transaction


@dataclass(frozen=True)
class BuildOptions:
    """What `prefclean build`'s flags (and prefclean.build()'s arguments) ask for."""

    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    full_refresh: bool = False
    run_tests: bool = True
    run_exports: bool = True
    fail_fast: bool = False  # stop at the first failed model or error-severity test; the rest is skipped
    judge: str | None = None  # this named judge for every judge() call
    refresh_judgments: bool = False
    no_wait: bool = False  # batch judges submit and return; the next build collects
    batch_export: Path | None = None  # batch judges write their requests to this file instead of submitting
    executor: str | None = None  # local | ray; None: prefclean.yml's
    ray_address: str | None = None
    max_cost: float | None = None  # USD every judge together may spend (--max-cost)
    planner: Any = None  # `prefclean plan` (judge/plan.py): judge calls are counted, none is sent
    state: str | Path | None = None  # --state DIR: a previous run's target/, for state:modified selectors
    threads: int | None = None  # --threads N: DuckDB's `threads` setting for this build

    def run_options(self) -> RunOptions:
        executor = "ray" if self.ray_address and not self.executor else self.executor  # an address means Ray
        return RunOptions(judge_override=self.judge, refresh_judgments=self.refresh_judgments, executor=executor,
                          ray_address=self.ray_address, max_cost_usd=self.max_cost, planner=self.planner,
                          batch_wait=not self.no_wait, batch_export=self.batch_export)


def load_graph(project: Project, connection=None, state: str | Path | None = None) -> tuple[Compiler, Graph]:
    """The rendered models and their DAG; `state` (--state DIR) is read first, so a bad DIR fails before any work."""
    saved = load_state(state)
    compiler = Compiler(project, connection)
    models = compiler.parse_all()
    if saved is not None:
        saved.compare_with(compiler.macro_checksums, project.sources)
    check_export_models(project, models, compiler.disabled)
    return compiler, Graph({name: m.refs for name, m in models.items()}, models, saved)


def check_export_models(project: Project, models: dict, disabled: dict) -> None:
    """Every export names a model (or seed) of the project, before anything is built or judged: a misspelt
    `model:` would otherwise be an export that never runs, found only after the judge was paid."""
    for name, export in project.exports.items():
        for key in ("model", "audit_model"):
            model = export.model if key == "model" else export.options.get(key)
            if model is None or model in models:
                continue
            why = ("is disabled (`enabled: false`)" if model in disabled
                   else f"is not a model or seed of this project{did_you_mean(model, models, quote=chr(39))}")
            raise ProjectError(f"prefclean.yml: exports.{name}.{key}: '{model}' {why}")


def stage_sources(con, project: Project, names: set[str], *, force: bool, report: Reporter) -> None:
    for name in sorted(names):
        start = time.perf_counter()
        rows, staged = stage_source(con, project, project.sources[name], force=force)
        report(SourceStaged(name, rows, staged, time.perf_counter() - start))


#: What the UDFs need before their first call (DuckDB hands them Arrow arrays; the judge's rows are Arrow):
#: ~0.15 s of import with numpy, which pyarrow imports.
ARROW_MODULES = ("pyarrow", "pyarrow.compute", "pyarrow.json")
# A model's builds with a batch judge: its first pass, then one per stage of requests that hang on the answers of
# the one before (an escalation, then the uncertain bias check's swapped pass), each filled by the next build
MODEL_PASSES = 4


def import_in_background(modules: tuple[str, ...]) -> None:
    """Start importing these (third-party modules that import nothing of prefclean's) in a daemon thread. Opening
    the warehouse is DuckDB's C++ work without the GIL, ~30-50 ms, in which the import runs instead of after it;
    whoever imports them next waits for this import to finish (Python's import lock), not for a second one. A
    failure here is left for that import to raise."""
    missing = [m for m in modules if m not in sys.modules]
    if not missing:
        return

    def run() -> None:
        for name in missing:
            try:
                importlib.import_module(name)
            except BaseException:
                return

    threading.Thread(target=run, name="prefclean-imports", daemon=True).start()


class Later:
    """`fn(*args)` computed in a daemon thread; `result()` waits for it (and raises what it raised). For Python
    work the build needs only later, run while the main thread waits on DuckDB (which releases the GIL)."""

    def __init__(self, fn, *args):
        self._value = self._error = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name="prefclean-later", daemon=True)
        self._thread.start()

    def _run(self, fn, args) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:
            self._error = exc

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _guarded(report: Reporter, ctx: RunContext) -> Reporter:
    """The reporter as UDFs call it, from DuckDB's threads: there, a reporter that raises would fail the
    rows of a judge batch, so its error becomes a warning under the model instead."""

    def report_from_udf(event) -> None:
        try:
            report(event)
        except Exception as exc:
            ctx.note_once(f"WARNING the reporter failed on {type(event).__name__} "
                          f"({type(exc).__name__}: {exc}); the build went on without it")

    return report_from_udf


class Build:
    """One build: sources, then the selected models in order, each followed by its data tests. The caller
    (api.run_build) adds the summary and the exports, and closes it."""

    def __init__(self, project: Project, options: BuildOptions, report: Reporter = quiet):
        if options.judge:  # models can see it (var('judge_override')), e.g. to re-judge rows judged by another judge
            project = replace(project, vars={**project.vars, "judge_override": options.judge})
        if options.refresh_judgments:  # var('refresh_judgments'): incremental models re-judge every row
            project = replace(project, vars={**project.vars, "refresh_judgments": True})
        self.project, self.options, self.report = project, options, report
        self.run_id = uuid.uuid4().hex[:12]
        import_in_background(ARROW_MODULES)  # while the warehouse opens, below
        con = self.ctx = None
        try:
            self.con = con = connect(project.warehouse)
            bound_memory(con)
            if options.threads is not None:  # --threads N: models build one at a time; each query uses N threads
                con.execute(f"set threads = {int(options.threads)}")
            self._clean_leftovers(con)
            self.udfs = all_udfs(project)
            self.ctx = RunContext(project=project, options=options.run_options())
            self.ctx.report = _guarded(report, self.ctx)
            # Read in a thread: ~25-30 ms of Python that overlaps DuckDB's staging and first model instead of
            # preceding them; shown under the first model built (_note_unread_vars).
            self._unread_vars: Later | None = Later(unread_vars_warning, project.root, project.vars)
            self.ctx.closers.append(watch_interrupts())  # Ctrl-C reaches the judge's threads until the build ends
            start_warm_ups(self.udfs, self.ctx)
            self.compiler, self.graph = load_graph(project, con, options.state)
            self.selected = self.graph.select(options.select, exclude=options.exclude)
            self.tests = load_tests(self.compiler) if options.run_tests else []
        except BaseException:  # a compile error must not leave the warehouse open (and locked), nor what a
            if con is not None:  # warm-up opened (one that finishes later opens nothing: see RunContext.lock)
                con.close()
            if self.ctx is not None:
                self.ctx.close()
            raise
        self.results: list[ModelRun] = []
        self.test_results: list[TestRun] = []
        self.built: set[str] = set()
        self.elapsed = 0.0

    def _note_unread_vars(self) -> None:
        if self._unread_vars is not None:
            unread, self._unread_vars = self._unread_vars.result(), None
            if unread:
                self.ctx.note_once(unread)

    def _clean_leftovers(self, con) -> None:
        """What a killed build or export left (side tables, `.NAME.xxxxxxxx.tmp` files): ours to remove, since
        this build holds the warehouse and no other process can be using them."""
        from .export.files import remove_leftover_exports

        from .artifacts import remove_leftover_artifacts

        tables = drop_leftovers(con)
        files = remove_leftover_exports(self.project) + remove_leftover_artifacts(self.project.target_dir)
        if tables or files:
            self.report(LeftoversRemoved((*tables, *(str(self.project.shown(f)) for f in files))))

    def run(self) -> list[ModelRun]:
        start = time.perf_counter()
        con = self.con
        try:
            register_udfs(con, self.udfs, self.ctx)
            models = self.compiler.models
            # Sources of ephemeral parents count too: their SQL is inlined into the selected models.
            inlined = {a for n in self.selected for a in self.graph.ancestors(n) if models[a].materialized == "ephemeral"}
            needed_sources = set().union(set(), *(models[n].sources for n in set(self.selected) | inlined))
            stage_sources(con, self.project, needed_sources, force=self.options.full_refresh, report=self.report)
            for name in self.selected:  # a source of the wrong shape: one line now, not a Binder error later
                check_source_columns(con, self.project, models[name])
            self.compiler.write_compiled(self.project.target_dir)
            write_manifest(self.project.target_dir, self.project, models, self.graph, self.compiler.macro_checksums)
            self.compiler.executing = True
            self._run_project_hooks(con, "on-run-start", self.project.on_run_start)
            self._run_models(con)
            self._run_project_hooks(con, "on-run-end", self.project.on_run_end)  # after failed models too
            record_run(con, self.run_id, self.results)
        finally:
            self.ctx.close(wait=False)  # the judgment cache's checkpoint goes on beside the summary; close() waits
            self.elapsed = time.perf_counter() - start
            self.write_results()
        return self.results

    def write_results(self, extra: dict | None = None) -> None:
        write_run_results(self.project.target_dir, self.run_id, "build", self.results, self.elapsed,
                          {**self.ctx.summary(), **(extra or {})})

    def close(self) -> None:
        try:
            self.ctx.close(wait=False)  # (run() closes it too; closing twice does nothing)
            self.con.close()  # the warehouse's checkpoint, beside the judgment cache's
        finally:
            self.ctx.close()  # waits for the files' closers

    def _run_project_hooks(self, con, key: str, statements: list[str]) -> None:
        """prefclean.yml's on-run-start / on-run-end (dbt's): Jinja SQL, each statement all or nothing."""
        for i, text in enumerate(statements):
            sql = self.compiler.render_hook(text, f"{key}[{i}]")
            try:
                with transaction(con):
                    con.execute(sql)
            except duckdb.Error as exc:
                raise ModelError(f"prefclean.yml: {key}[{i}] failed: {' '.join(str(exc).split())}") from None

    def _run_models(self, con) -> None:
        failed: set[str] = set()
        total = len(self.selected)
        for index, name in enumerate(self.selected, 1):
            model = self.compiler.models[name]
            self.report(ModelStarted(index, total, name, model.materialized))
            if failed and self.options.fail_fast:
                self._record(index, ModelRun(name, "skipped", model.materialized, blocked_by=tuple(sorted(failed)),
                                             fail_fast=True, error="--fail-fast: a model or test failed"))
                continue
            blocked = tuple(sorted(p for p in model.refs if p in failed))
            if blocked:
                failed.add(name)
                self._record(index, ModelRun(name, "skipped", model.materialized, blocked_by=blocked,
                                             error=f"upstream failed: {', '.join(blocked)}"))
                continue
            if not self._run_tests_after(con, name, unit=True):  # dbt runs a model's unit tests before it
                failed.add(name)
                self._record(index, ModelRun(name, "error", model.materialized, error="a unit test failed; the "
                                             "previous version is kept"))
                continue
            self.ctx.model, self.ctx.fatal_error = name, None
            start = time.perf_counter()
            compiled_path = str(self.compiler.compiled_path(model))
            try:
                rows = materialize(con, self.compiler, model, full_refresh=self.options.full_refresh,
                                   notes=self.ctx.notes)
                passes = 1
                # A batch judge collected answers its rows waited for: fill them. A pass may record requests that
                # hang on the answers before it (escalation, the uncertain bias check's swapped pass): submitted,
                # waited for and filled by the next, up to MODEL_PASSES.
                while self.ctx.finish_model() and passes < MODEL_PASSES:
                    rows = materialize(con, self.compiler, model, full_refresh=self.options.full_refresh,
                                       notes=self.ctx.notes)
                    passes += 1
            except KeyboardInterrupt:
                self._record(index, ModelRun(name, "error", model.materialized, error="interrupted", interrupted=True))
                raise
            except PrefcleanError as exc:
                fatal = self.ctx.take_fatal_error()  # a judge that cannot start: its own words
                if fatal:
                    exc = ModelError(f"model '{name}' failed: {fatal}")
                failed.add(name)
                self._record(index, ModelRun(name, "error", model.materialized, seconds=time.perf_counter() - start,
                                             error=str(exc), compiled_path=compiled_path))
                continue
            self._note_unread_vars()
            warnings, done = self.ctx.take_notes()
            self._record(index, ModelRun(name, "success", model.materialized, rows=rows,
                                         seconds=round(time.perf_counter() - start, 4), compiled_path=compiled_path,
                                         warnings=tuple(warnings), judges=tuple(j for j in done if isinstance(j, JudgeRun))))
            self.built.add(name)
            if not self._run_tests_after(con, name):
                failed.add(name)

    def _run_tests_after(self, con, name: str, unit: bool = False) -> bool:
        """The data tests that can run now that `name` is built (with unit: its unit tests, before it is built);
        False when an error-severity one failed."""
        ok = True
        for test in self.tests:
            if unit or test.unit_of:
                if test.unit_of != name or not unit:
                    continue
            # A test runs once all the models it reads are built in this run (or were not selected and
            # already stand in the warehouse: `--select +m` must not run m's children's tests).
            elif name not in test.depends_on or any(
                    d not in self.built and (d in self.selected or self._missing(con, d))
                    for d in test.depends_on):
                continue
            outcome = TestRun.from_result(run_test(con, test))
            self.test_results.append(outcome)
            self.report(TestFinished(outcome))
            ok = ok and not outcome.failed
        return ok

    def _missing(self, con, name: str) -> bool:
        model = self.compiler.models.get(name)
        return model is None or relation_kind(con, model.schema, model.identifier) is None

    def _record(self, index: int, result: ModelRun) -> None:
        self.results.append(result)
        self.report(ModelFinished(index, len(self.selected), result))

    @property
    def failed(self) -> bool:
        return any(r.status == "error" for r in self.results) or any(t.failed for t in self.test_results)
