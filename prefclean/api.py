"""prefclean from Python: what each command does, as functions returning typed results.

    import prefclean

    project = prefclean.load_project("path/to/project", vars={"min_margin": 2})
    result = prefclean.build(project, select="+pair_decisions", judge="llama70b")
    result.ok, result.model("judged_pairs").rows, result.judging.requests, result.summary["decisions"]
    prefclean.sql(project, "select decision, count(*) from pair_decisions group by all")  # a pyarrow.Table

The CLI (prefclean/cli.py) is a thin shell over these. A user mistake raises a PrefcleanError with its
one-line message; a model, test or export that fails does not raise: its result says so (`ok` is False).
Progress goes to a reporter (prefclean/events.py): by default tqdm.auto bars and the lines worth reading;
`reporter=prefclean.quiet` shows nothing, and any callable taking an event works.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Union

from .events import BuildFinished, ExportsSkipped, Reporter, SummaryReady, TestFinished, TestsFinished, quiet
from .project import Project, parse_vars
from .config.variables import merge_vars
from .project import load_project as _load_project
from .results import BuildResult, ExportRun, ExportsResult, JudgeStatus, JudgingStats, TestRun, TestsResult

if TYPE_CHECKING:
    import pyarrow as pa

    from .judge.batch_import import Imported

    from .compiler import Model
    from .judge.plan import Plan
    from .runner import BuildOptions

ProjectLike = Union[str, Path, Project]
Selectors = Union[str, Iterable[str], None]


def load_project(project_dir: str | Path = ".", vars: dict[str, Any] | str | None = None) -> Project:
    """Read prefclean.yml; `vars` override its vars (a mapping, or JSON/YAML text as --vars takes)."""
    return _load_project(project_dir, parse_vars(vars) if isinstance(vars, str) else dict(vars or {}))


def _project(project: ProjectLike, vars: dict[str, Any] | str | None) -> Project:
    if not isinstance(project, Project):
        return load_project(project, vars)
    if vars:  # checked as load_project checks --vars
        extra = parse_vars(vars) if isinstance(vars, str) else dict(vars)
        return replace(project, vars=merge_vars(project.vars, extra, origin="vars"))
    return project


def _judged_by(project: Project, judge: str | None) -> Project:
    """`judge=` (--judge) names a judge of prefclean.yml: checked before anything builds, as the user's mistake
    (exit 2), not found by the first judging model after the models before it were built."""
    if judge:
        from .errors import JudgeError, ProjectError
        from .judge.judges import resolve_judge

        try:
            resolve_judge(project, None, judge)
        except JudgeError as exc:
            raise ProjectError(f"--judge: {exc}") from None
    return project


def _max_cost(max_cost: float | None) -> float | None:
    """`max_cost` (--max-cost) is USD, 0 or more: NaN passes click's range (every comparison with it is false)
    and would cap nothing, a string or a bool would fail deep in the first judged batch."""
    if max_cost is None:
        return None
    if isinstance(max_cost, bool) or not isinstance(max_cost, (int, float)) or not max_cost >= 0:
        from .errors import ProjectError

        raise ProjectError(f"max_cost (--max-cost) must be USD, a number 0 or more, got {max_cost!r}")
    return float(max_cost)


def _reporter(reporter: Reporter | None) -> Reporter:
    if reporter is not None:
        return reporter
    from .reporter import NotebookReporter

    return NotebookReporter()


def _selectors(selectors: Selectors) -> tuple[str, ...]:
    return (selectors,) if isinstance(selectors, str) else tuple(selectors or ())


def build(project: ProjectLike = ".", *, select: Selectors = None, exclude: Selectors = None,
          vars: dict[str, Any] | str | None = None, full_refresh: bool = False, judge: str | None = None,
          refresh_judgments: bool = False, executor: str | None = None, ray_address: str | None = None,
          tests: bool = True, exports: bool = True, fail_fast: bool = False, max_cost: float | None = None,
          state: str | Path | None = None, threads: int | None = None,
          wait: bool = True,
          reporter: Reporter | None = None) -> BuildResult:
    """`prefclean build`: stage the sources, build the selected models with their data tests, write the
    summary, run the exports of what was built (`fail_fast`: stop at the first failure). Safe to call from
    a notebook (a running event loop): the judge's requests run on prefclean's own loop thread. `wait=False`:
    batch judges (engine openai-batch) submit and return, their rows pending until a later build collects them."""
    from .runner import BuildOptions

    options = BuildOptions(select=_selectors(select), exclude=_selectors(exclude), full_refresh=full_refresh,
                           run_tests=tests, run_exports=exports, fail_fast=fail_fast, judge=judge,
                           refresh_judgments=refresh_judgments, executor=executor, ray_address=ray_address,
                           max_cost=_max_cost(max_cost), state=state, threads=threads,
                           no_wait=not wait)
    return run_build(_judged_by(_project(project, vars), judge), options, _reporter(reporter))


def plan(project: ProjectLike = ".", *, select: Selectors = None, exclude: Selectors = None,
         vars: dict[str, Any] | str | None = None, judge: str | None = None, full_refresh: bool = False,
         state: str | Path | None = None, max_cost: float | None = None, refresh_judgments: bool = False) -> "Plan":
    """`prefclean plan`: per judge, what a build of these models would send (rows, cached, requests, tokens,
    cost, time), found by running the models on a throwaway copy of the warehouse with a judge that sends
    nothing, and (with budgets or `max_cost`, the build's --max-cost) how many requests the limits let
    through; `refresh_judgments` plans a build that asks again what the cache holds. The warehouse and the
    judgment cache are left as they were."""
    from .judge.plan import run_plan

    return run_plan(_judged_by(_project(project, vars), judge), _selectors(select), _selectors(exclude), judge,
                    full_refresh, state, _max_cost(max_cost), refresh_judgments)


def seed(project: ProjectLike = ".", *, select: Selectors = None, exclude: Selectors = None,
         vars: dict[str, Any] | str | None = None, state: str | Path | None = None,
         threads: int | None = None, reporter: Reporter | None = None) -> BuildResult:
    """`prefclean seed`: load the selected seeds/*.csv (every one by default) as tables; no tests, no exports."""
    words = [w for s in _selectors(select) for w in s.split()]
    chosen = tuple(f"{w},resource_type:seed" for w in words) or ("resource_type:seed",)
    return build(project, select=chosen, exclude=exclude, vars=vars, tests=False, exports=False, state=state,
                 threads=threads, reporter=reporter)


def run_build(project: Project, options: BuildOptions, report: Reporter = quiet) -> BuildResult:
    """The models with their data tests (runner.Build), then the run summary, then the exports."""
    from .export import run_exports
    from .runner import Build
    from .calibration_data import summary_section
    from .summary import compute_summary, max_drop_rate, write_summary

    start = time.perf_counter()
    drop_threshold = max_drop_rate(project.vars)  # a wrong value fails before anything runs
    build = Build(project, options, report)
    exports: list[ExportRun] = []
    skipped = False
    summary = None
    try:
        build.run()
        # The summary first: exports (a Hub dataset card) read it.
        judging = build.ctx.summary().get("judging")
        judges = build.ctx.summary().get("judges")
        for m in build.compiler.models.values():
            if m.config.get("audit") and m.name in build.built:
                summary = compute_summary(build.con, m.name, judging, build.compiler.models, judges,
                                          drop_threshold)
                if summary:
                    calibration = summary_section(build.con, project.vars, m.name)  # when reviews were pulled
                    if calibration:
                        summary["calibration"] = calibration
                    report(SummaryReady(summary))
                    write_summary(build.con, project.target_dir, build.run_id, summary)
        if options.run_exports and project.exports and not build.failed:
            # After `--select`, only the exports of models this run built.
            names = [n for n, e in project.exports.items() if e.on_build and e.model in build.built]
            if names:
                exports = run_exports(build.con, project, names, report)
        elif options.run_exports and project.exports:
            skipped = True
            report(ExportsSkipped("the build failed"))
        build.write_results({"tests": [t.artifact() for t in build.test_results], "summary": summary})
    finally:
        build.close()
    result = BuildResult(
        ok=not build.failed and all(e.ok for e in exports), run_id=build.run_id, models=tuple(build.results),
        tests=tuple(build.test_results), exports=tuple(exports), exports_skipped=skipped,
        judging=JudgingStats.from_counts(build.ctx.summary().get("judging")), summary=summary,
        seconds=time.perf_counter() - start)
    report(BuildFinished(result))
    return result


def test(project: ProjectLike = ".", *, select: Selectors = None, exclude: Selectors = None,
         vars: dict[str, Any] | str | None = None, state: str | Path | None = None,
         reporter: Reporter | None = None) -> TestsResult:
    """`prefclean test`: run the data tests of the selected models (and those a `tag:` selector names) against
    the warehouse as it stands."""
    from .datatests import load_tests, run_test, select_tests
    from .runner import load_graph
    from .warehouse import connect

    project, report = _project(project, vars), _reporter(reporter)
    con = connect(project.warehouse, read_only=True)
    runs: list[TestRun] = []
    try:
        compiler, graph = load_graph(project, con, state)
        tests = select_tests(load_tests(compiler), graph, _selectors(select), _selectors(exclude))
        if any(t.store_failures for t in tests):  # storing failing rows writes main_dbt_test__audit.*
            con.close()
            con = connect(project.warehouse)
        for test_ in tests:
            runs.append(TestRun.from_result(run_test(con, test_)))
            report(TestFinished(runs[-1]))
    finally:
        con.close()
    result = TestsResult(tuple(runs))
    report(TestsFinished(result))
    return result


test.__test__ = False  # type: ignore[attr-defined]  # `from prefclean import test` in a test module is no test


def compile(project: ProjectLike = ".", *, select: Selectors = None, exclude: Selectors = None,
            vars: dict[str, Any] | str | None = None, write: bool = True,
            state: str | Path | None = None) -> list[Model]:
    """Render the models (all of them; a model's SQL needs its parents'); returns the selected ones in run
    order, each with its `compiled_sql`. `write`: also write target/compiled/ and target/manifest.json."""
    from .artifacts import write_manifest
    from .runner import load_graph

    project = _project(project, vars)
    compiler, graph = load_graph(project, state=state)
    if write:
        compiler.write_compiled(project.target_dir)
        write_manifest(project.target_dir, project, compiler.models, graph, compiler.macro_checksums)
    return [compiler.models[n] for n in graph.select(_selectors(select), exclude=_selectors(exclude))]


def sql(project: ProjectLike, query: str, *, write: bool = False) -> "pa.Table":
    """Run one query against the warehouse (read-only unless `write`) and return its rows as a
    pyarrow.Table (None for a statement without rows). Model names and {{ ref('m') }} resolve."""
    from .sqlshell import open_connection, render_query, run_query

    project = _project(project, None)
    con = open_connection(project, write=write)
    try:
        return run_query(con, render_query(project, query, con=con))
    finally:
        con.close()


def export(project: ProjectLike = ".", names: str | Iterable[str] | None = None, *,
           vars: dict[str, Any] | str | None = None, reporter: Reporter | None = None,
           review: str | None = None, budget: int | None = None, calibration: int | None = None,
           min_submitted: int | None = None) -> ExportsResult:
    """`prefclean export`: run the exports declared in prefclean.yml (all, or the names given). review, budget,
    calibration and min_submitted, when given, replace those options of the argilla exports run (the review
    queue: prefclean/export/review_queue.py); given, they run only argilla exports."""
    from .export import run_exports
    from .warehouse import connect

    project = _project(project, vars)
    overrides = {k: v for k, v in {"review": review, "budget": budget, "calibration": calibration,
                                   "min_submitted": min_submitted}.items() if v is not None}
    if overrides:
        project, names = _with_review_options(project, list(_selectors(names)), overrides)
    con = connect(project.warehouse)
    try:
        runs = run_exports(con, project, list(_selectors(names)) or None, _reporter(reporter))
    finally:
        con.close()
    return ExportsResult(tuple(runs))


def _with_review_options(project: Project, names: list[str], overrides: dict[str, Any]) -> tuple[Project, list[str]]:
    """The project with the command line's review options in the argilla exports named (all argilla exports
    when none is), and those names; an export of another target, or options that do not go together, is one
    line naming it."""
    from .config.exports import review_options_problem
    from .errors import ProjectError

    argilla = [n for n, e in project.exports.items() if e.target == "argilla"]
    flags = ", ".join(f"--{k.replace('_', '-')}" for k in overrides)
    for name in names:
        export = project.exports.get(name)
        if export is not None and export.target != "argilla":
            raise ProjectError(f"{flags}: export '{name}' is a {export.target} export; the review options are for "
                               f"argilla exports ({', '.join(argilla) or 'none in prefclean.yml'})")
    names = names or argilla
    if not names:
        raise ProjectError(f"{flags}: prefclean.yml has no argilla export")
    exports = dict(project.exports)
    for name in names:
        if name not in exports:
            continue  # run_exports names it
        export = exports[name].model_copy(update=overrides)
        problem = review_options_problem(export.review, export.budget)
        if problem:
            key, text = problem
            raise ProjectError(f"export '{name}': {key} {text}")
        exports[name] = export
    return replace(project, exports=exports), names


def judges(project: ProjectLike = ".", *, check: bool = True) -> list[JudgeStatus]:
    """`prefclean judges`: the project's judges (or the smoke-test judge when none is declared), each tried
    with a one-token request unless `check` is False."""
    from .judge.catalog import describe_judges

    return [JudgeStatus(r["name"], r["engine"], r["model"], r["ok"], r["status"])
            for r in describe_judges(_project(project, None), check=check)]


def pull_argilla(project: ProjectLike, name: str) -> dict[str, int]:
    """`prefclean pull argilla NAME`: every review of Argilla export NAME (one row per record and reviewer,
    with its status: submitted, draft or discarded) into the table human.reviews; the next build applies the
    latest submitted one per pair. Returns the rows per status."""
    from .errors import ExportError
    from .export.argilla_target import pull_reviews
    from .warehouse import connect

    project = _project(project, None)
    export = project.exports.get(name)
    if export is None or export.target != "argilla":
        known = [n for n, e in project.exports.items() if e.target == "argilla"]
        raise ExportError(f"no argilla export named '{name}' in prefclean.yml (argilla exports: {', '.join(known) or 'none'})")
    con = connect(project.warehouse)
    try:
        return pull_reviews(con, project, export)
    finally:
        con.close()


def calibrate(project: ProjectLike = ".", *, model: str = "pair_decisions", vars: dict[str, Any] | str | None = None,
              seed: int = 0, samples: int = 1000) -> dict:
    """`prefclean calibrate`: the judge's verdicts against the human reviews in human.reviews (`prefclean pull
    argilla`), at the project's decision thresholds (prefclean/calibration.py says what is measured).
    Returns the report and writes it into target/summary.json under `calibration`."""
    import json

    from .artifacts import write_json_atomic
    from .calibration_data import measure
    from .errors import ProjectError
    from .warehouse import connect

    project = _project(project, vars)
    if not project.warehouse.exists():
        raise ProjectError(f"no warehouse at {project.warehouse}: run `prefclean build` first")
    con = connect(project.warehouse, read_only=True)
    try:
        report = measure(con, project.vars, model=model, seed=seed, samples=samples)
    finally:
        con.close()
    path = project.target_dir / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    write_json_atomic(path, {**summary, "calibration": report})
    return report


def batch_export(project: ProjectLike, output: str | Path, *, select: Selectors = None, exclude: Selectors = None,
                 state: str | Path | None = None, judge: str | None = None, vars: dict[str, Any] | str | None = None,
                 reporter: Reporter | None = None) -> int:
    """`prefclean batch export`: build the selected models (no tests, no exports), the batch judges (engine
    openai-batch) writing the request lines the cache cannot answer to `output` instead of submitting them
    (their rows are pending); returns how many lines. For offline runners such as `vllm run-batch`."""
    from .runner import BuildOptions

    project = _judged_by(_project(project, vars), judge)  # before the output file is made or emptied
    path = Path(output).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")  # a fresh file: the build appends each model's lines
    options = BuildOptions(select=_selectors(select), exclude=_selectors(exclude), state=state, judge=judge,
                           run_tests=False, run_exports=False, batch_export=path)
    run_build(project, options, _reporter(reporter))
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def batch_import(project: ProjectLike, path: str | Path) -> "Imported":
    """`prefclean batch import FILE`: the answers in a batch output file (OpenAI's format, as `vllm run-batch`
    writes it) to lines prefclean exported or submitted, into the judgment cache, each with its call (usage
    and cost at the judge's `price`) in the call log; the next build uses them. Returns what was imported
    (judge/batch_import.py `Imported`: stored, failed, unknown custom_ids, usage and cost per judge)."""
    from .judge.batch_import import import_results
    from .judge.cache import JudgmentCache
    from .judge.tasks import make_task

    project = _project(project, None)
    cache = JudgmentCache(project.judgment_cache)
    try:
        return import_results(cache, Path(path), lambda name: make_task(name, project.root), project.judges.get)
    finally:
        cache.close()
