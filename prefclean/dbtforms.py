"""dbt files, folders and Jinja names that prefclean does not have, refused by name: a dbt user's project never
builds with a part of it silently left unread."""

from __future__ import annotations

from pathlib import Path

from .errors import CompileError

_PACKAGES = "packages are not supported by prefclean; copy the macros you use into macros/"
# dbt files that would otherwise sit in a project unread.
DBT_ONLY_FILES = {
    "dbt_project.yml": "move its models:, seeds:, vars: and on-run-start/on-run-end into prefclean.yml, then remove it",
    "profiles.yml": "prefclean has one target, the warehouse named in prefclean.yml (`warehouse:`); remove it",
    "selectors.yml": "named selectors are not supported by prefclean; write the selector in -s (e.g. "
                     "-s 'tag:nightly,config.materialized:table')",
    "packages.yml": _PACKAGES,
    "dependencies.yml": _PACKAGES,
}
# dbt folders whose .sql files prefclean would not read.
DBT_ONLY_FOLDERS = {
    "snapshots": "snapshots/ is not supported by prefclean (an incremental model with a unique_key keeps the latest "
                 "version of each row)",
    "analyses": "analyses/ is not supported by prefclean (a model materialized as a view, or `prefclean sql`, "
                "does what an analysis does)",
}
# Names from dbt's Jinja context prefclean does not offer: named in the error instead of "'x' is undefined".
DBT_ONLY_NAMES = ("invocation_id", "run_started_at", "flags", "statement", "load_result", "graph", "api", "builtins",
                  "selected_resources", "dbt_version", "store_result", "load_relation", "source_node", "model",
                  "database", "schema", "context", "var_defaults", "submit_python_job", "set_sql_header")


def refuse_dbt_only_files(root: Path, models_dir: Path) -> None:
    for name, what in DBT_ONLY_FILES.items():
        if (root / name).exists():
            raise CompileError(f"{name} is not read by prefclean: {what}")
    for folder, what in DBT_ONLY_FOLDERS.items():
        found = sorted((root / folder).rglob("*.sql"))
        if found:
            raise CompileError(f"{found[0].relative_to(root)}: {what}")
    python = sorted(models_dir.rglob("*.py")) if models_dir.exists() else []
    if python:
        raise CompileError(f"{python[0].relative_to(root)}: Python models are not supported by prefclean (write the "
                           "model in SQL; Python functions go in udfs/ and are called from SQL)")


def undefined_hint(name: str | None) -> str:
    """What to add to Jinja's "'x' is undefined" for a dbt name prefclean lacks."""
    return " (part of dbt's Jinja context that prefclean does not offer)" if name in DBT_ONLY_NAMES else ""
