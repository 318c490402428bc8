"""prefclean: clean LLM preference datasets with an LLM judge, as a dbt-like DuckDB pipeline.

The Python API (prefclean/api.py) does what the commands do and returns typed results:

    import prefclean

    result = prefclean.build("my_project", select="+pair_decisions")
    result.ok, result.models, result.tests, result.judging, result.summary
"""

__version__ = "0.1.0"

from .udf import udf  # noqa: E402  (the decorator project udfs/ use)
from . import export as _exporters  # noqa: E402,F401  (the package first: importing it later would replace
# the name `prefclean.export`, the function bound below, with the package)
from .api import (build, calibrate, compile, export, judges, load_project, plan, pull_argilla, seed, sql,  # noqa: E402
                  test)
from .errors import PrefcleanError  # noqa: E402
from .events import Reporter, quiet  # noqa: E402
from .project import Project  # noqa: E402
from .reporter import NotebookReporter, TerminalReporter  # noqa: E402
from .results import (BuildResult, ExportRun, ExportsResult, JudgePlan, JudgeRun, JudgeStatus,  # noqa: E402
                      JudgingStats, ModelRun, Plan, TestRun, TestsResult)
from .udf import RunContext, RunOptions  # noqa: E402

__all__ = [
    "__version__", "udf", "load_project", "build", "seed", "test", "compile", "sql", "export", "pull_argilla", "calibrate",
    "judges", "plan", "Plan", "JudgePlan", "Project", "BuildResult", "ModelRun", "TestRun", "TestsResult", "ExportRun", "ExportsResult",
    "JudgeRun", "JudgeStatus", "JudgingStats", "Reporter", "TerminalReporter", "NotebookReporter", "quiet",
    "PrefcleanError", "RunContext", "RunOptions",
]
