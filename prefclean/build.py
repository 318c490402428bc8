"""`prefclean build`: models (each followed by its data tests), then exports, then the run summary."""

from __future__ import annotations

import time
from dataclasses import asdict

from .datatests import TestResult, load_tests, run_test
from .project import Project
from .runner import Build, BuildOptions, Reporter
from .summary import compute_summary, format_summary, write_summary
from .warehouse import MODELS_SCHEMA, relation_kind


def report_test(result: TestResult, report: Reporter) -> None:
    label = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "error": "ERROR"}[result.status]
    detail = f" ({result.message})" if result.message else ""
    report(f"    {label} {result.test.name}{detail}")


def run_build(project: Project, options: BuildOptions, report: Reporter = print) -> bool:
    """Returns True when every model, error-severity data test and export succeeded."""
    start = time.perf_counter()
    build = Build(project, options, report)
    try:
        tests = load_tests(build.compiler) if options.run_tests else []
        test_results: list[TestResult] = []
        built: set[str] = set()

        def after_model(con, model, result) -> bool:
            built.add(model.name)
            ok = True
            for test in tests:
                # A test runs once all the models it reads are built in this run (or were not selected
                # and already stand in the warehouse: `--select +m` must not run m's children's tests).
                if model.name not in test.depends_on or any(
                        d not in built and (d in build.selected or relation_kind(con, MODELS_SCHEMA, d) is None)
                        for d in test.depends_on):
                    continue
                outcome = run_test(con, test)
                test_results.append(outcome)
                report_test(outcome, report)
                if outcome.status in ("fail", "error") and test.severity == "error":
                    ok = False
            return ok

        build.after_model = after_model
        results = build.run()
        # The summary first: exports (a Hub dataset card) read it.
        audit = [m.name for m in build.compiler.models.values() if m.config.get("audit") and m.name in built]
        summary = None
        for name in audit:
            summary = compute_summary(build.con, name, build.ctx.summary().get("judging"))
            if summary:
                for line in format_summary(summary):
                    report(line)
                write_summary(build.con, project.target_dir, build.run_id, summary)
        exports_ok = True
        if options.run_exports and project.exports and not build.failed:
            from .export import run_exports

            # After `--select`, only the exports of models this run built.
            names = [n for n, e in project.exports.items() if e.on_build and e.model in built]
            if names:
                exports_ok = run_exports(build.con, project, build.compiler, names, report)
        elif options.run_exports and project.exports:
            report("exports skipped: the build failed")
        build.write_results({"tests": [{**asdict(r.test), "depends_on": sorted(r.test.depends_on), "status": r.status,
                                        "failures": r.failures, "message": r.message} for r in test_results],
                             "summary": summary})
    finally:
        build.close()
    counts = {s: sum(1 for r in results if r.status == s) for s in ("success", "error", "skipped")}
    failed_tests = sum(1 for r in test_results if r.status in ("fail", "error"))
    warned = sum(1 for r in test_results if r.status == "warn")
    report(f"Done in {time.perf_counter() - start:.2f}s. OK={counts['success']} ERROR={counts['error']} "
           f"SKIP={counts['skipped']} TESTS_PASSED={sum(1 for r in test_results if r.status == 'pass')} "
           f"TESTS_FAILED={failed_tests} TESTS_WARNED={warned}")
    return not build.failed and exports_ok
