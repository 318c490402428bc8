"""Where engines, judge tasks, exporters, UDFs and template helpers come from, by name.

prefclean's own are listed below as entry points; an installed package adds its own the standard way, and
both are found and loaded by the same code (`EntryPoint.load`), only when asked for: a build that uses no
llama.cpp judge never imports llama_cpp. A package declares, in its pyproject.toml:

    [project.entry-points."prefclean.engines"]
    my-engine = "my_package.engine:MyEngine"      # an Engine subclass whose `kind` is "my-engine"

Groups: `prefclean.engines` (Engine subclasses), `prefclean.tasks` (Task subclasses), `prefclean.exporters`
(export functions), `prefclean.udfs` (functions decorated with @prefclean.udf), `prefclean.template_globals`
(Python functions models call from Jinja). A name defined twice is an error naming both packages, never a
silent pick. Nothing here imports the things it lists, so this module can be imported by anything.
"""

from __future__ import annotations

import difflib
import functools
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import PrefcleanError

ENGINES, TASKS, EXPORTERS, UDFS, TEMPLATE_GLOBALS = (
    "prefclean.engines", "prefclean.tasks", "prefclean.exporters", "prefclean.udfs", "prefclean.template_globals")
GROUPS = (ENGINES, TASKS, EXPORTERS, UDFS, TEMPLATE_GLOBALS)
WHAT = {ENGINES: "engine", TASKS: "judge task", EXPORTERS: "target", UDFS: "UDF",
        TEMPLATE_GLOBALS: "template global"}

BUILTIN: dict[str, dict[str, str]] = {
    ENGINES: {
        "openai": "prefclean.judge.engines.openai:OpenAIEngine",
        "openai-batch": "prefclean.judge.engines.openai_batch:OpenAIBatchEngine",
        "hf-inference": "prefclean.judge.engines.hf_inference:HFInferenceEngine",
        "llamacpp": "prefclean.judge.engines.llamacpp:LlamaCppEngine",
    },
    TASKS: {
        "ultrafeedback": "prefclean.judge.tasks:UltraFeedback",
        "prometheus-absolute": "prefclean.judge.tasks:PrometheusAbsolute",
        "prometheus-relative": "prefclean.judge.tasks:PrometheusRelative",
    },
    EXPORTERS: {
        "parquet": "prefclean.export.files:export_parquet",
        "jsonl": "prefclean.export.files:export_jsonl",
        "csv": "prefclean.export.files:export_csv",
        "hub": "prefclean.export.hub_target:export_hub",
        "argilla": "prefclean.export.argilla_target:export_argilla",
    },
    UDFS: {
        "prefclean_judge": "prefclean.judge.udf:prefclean_judge",
    },
    TEMPLATE_GLOBALS: {
        "judge": "prefclean.judge.helpers:judge",
        "judgment_type": "prefclean.judge.helpers:judgment_type",
        "judge_absolute": "prefclean.judge.helpers:judge_absolute",
        "judge_relative": "prefclean.judge.helpers:judge_relative",
        "judge_identity": "prefclean.judge.identity:judge_identity",
        "judge_escalation": "prefclean.judge.escalation:judge_escalation",
        "format_rows": "prefclean.formats.templates:format_rows",
        "format_swap": "prefclean.formats.templates:format_swap",
        "format_kind": "prefclean.formats.templates:format_kind",
        "format_originals": "prefclean.formats.templates:format_originals",
        "format_lines": "prefclean.formats.templates:format_lines",
        "format_flipped_line": "prefclean.formats.templates:format_flipped_line",
    },
}
BUILTIN_ORIGIN = "prefclean"


class PluginError(PrefcleanError):
    """A plugin cannot be used: a name defined twice, or an entry point that does not load."""


def origin(ep: EntryPoint) -> str:
    """Who defines it: prefclean, or the installed package (distribution) that declares it."""
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else BUILTIN_ORIGIN


@functools.cache
def _installed() -> dict[str, tuple[EntryPoint, ...]]:
    """Entry points of installed packages, read once per process (~5 ms for a hundred packages): a package
    installed into a running process is seen by the next one."""
    found = entry_points()
    return {group: tuple(found.select(group=group)) for group in GROUPS}


def available(group: str) -> dict[str, EntryPoint]:
    """Every name of the group, built-ins first."""
    table = {name: EntryPoint(name, value, group) for name, value in BUILTIN[group].items()}
    for ep in _installed()[group]:
        if ep.name in table:
            if table[ep.name].value == ep.value:  # prefclean's own, seen again through its own metadata
                continue
            raise PluginError(f"{WHAT[group]} '{ep.name}' is defined twice: by {origin(table[ep.name])} and by "
                              f"{origin(ep)} (entry point group {group}); uninstall or rename one")
        table[ep.name] = ep
    return table


def names(group: str) -> list[str]:
    """What prefclean.yml may name (an engine, an export target) without importing any of them."""
    return list(available(group))


@functools.cache
def _loaded(ep: EntryPoint) -> Any:
    return ep.load()


def load(group: str, name: str, *, context: str = "", error: type[PrefcleanError] = PluginError) -> Any:
    """The object registered under this name, imported now (once). An unknown name, or one that cannot be
    imported (a missing client library), is an `error` with one line starting with `context`."""
    try:
        table = available(group)
    except PluginError as exc:
        raise error(f"{context}{exc}") from None
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"one of {', '.join(sorted(table))}"
        raise error(f"{context}unknown {WHAT[group]} '{name}' ({hint})")
    try:
        return _loaded(table[name])
    except Exception as exc:
        who = "" if origin(table[name]) == BUILTIN_ORIGIN else f" (from {origin(table[name])})"
        raise error(f"{context}the {name} {WHAT[group]}{who} cannot load: {type(exc).__name__}: "
                    f"{' '.join(str(exc).split())}") from None


def load_all(group: str) -> dict[str, Any]:
    """Every object of the group, by name (for UDFs and template globals, all registered in each build)."""
    return {name: load(group, name) for name in available(group)}
