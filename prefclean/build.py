"""`prefclean build`: models (with their data tests), then exports, then the run summary."""

from __future__ import annotations

import time

from .project import Project
from .runner import Build, BuildOptions, Reporter


def run_build(project: Project, options: BuildOptions, report: Reporter = print) -> bool:
    """Returns True when every model, error-severity test and export succeeded."""
    start = time.perf_counter()
    build = Build(project, options, report)
    results = build.run()
    counts = {s: sum(1 for r in results if r.status == s) for s in ("success", "error", "skipped")}
    report(f"Done in {time.perf_counter() - start:.2f}s. OK={counts['success']} ERROR={counts['error']} SKIP={counts['skipped']}")
    return not build.failed
