"""Judge engines and export targets that installed packages add (prefclean/plugins.py finds them by name).

Their code is not imported to check prefclean.yml, so an engine that cannot load still fails only its judge's
model. A package can name the options class of its engine or target, so its keys are checked like the
built-ins', in the entry point group `prefclean.judge_options` (a JudgeConfig subclass whose `engine` is a
Literal of its name) or `prefclean.export_options` (an ExportConfig subclass, `target`); that class is
imported at load (keep it free of heavy imports). Without one, the keys every judge or export has are
checked, and the others reach the plugin as `options`, for it to check.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field, create_model

from ..errors import ProjectError
from .exports import EXPORT_CLASSES, ExportConfig
from .judges import JUDGE_CLASSES, JudgeConfig, RemoteJudgeConfig, _url_list

JUDGE_OPTIONS, EXPORT_OPTIONS = "prefclean.judge_options", "prefclean.export_options"


class PluginJudge(RemoteJudgeConfig):
    """An installed engine that names no options class: the OpenAI engine's connection keys, and any other."""

    model_config = ConfigDict(extra="allow")
    aliases: ClassVar[dict[str, str]] = {**JudgeConfig.aliases, "base_url": "base_urls"}

    base_urls: Annotated[tuple[str, ...], BeforeValidator(_url_list)] = Field((), description="the server's URL(s)")
    api_key_env: str | None = Field(None, description="the environment variable holding the key")

    @property
    def base_url(self) -> str | None:
        return self.base_urls[0] if self.base_urls else None

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PluginExport(ExportConfig):
    """An installed export target that names no options class: its keys reach it as `options`."""

    model_config = ConfigDict(extra="allow")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


@functools.cache
def _open_class(base: type, field: str, name: str) -> type:
    return create_model(f"{base.__name__}[{name}]", __base__=base, **{field: (Literal[name], ...)})


def _named_classes(group: str, base: type, field: str, names: list[str]) -> dict[str, type]:
    found = {}
    for ep in entry_points(group=group):
        if ep.name in names:
            try:
                cls = ep.load()
            except Exception as exc:
                raise ProjectError(f"the options of {ep.name} ({ep.value}, entry point group {group}) cannot load: "
                                   f"{type(exc).__name__}: {exc}") from None
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise ProjectError(f"{ep.value} (entry point group {group}) is not a {base.__name__} subclass")
            found[ep.name] = cls
    return found


def judge_classes() -> dict[str, type[JudgeConfig]]:
    """The built-in engines' options classes, and those of the engines installed packages add."""
    from .. import plugins

    extra = [name for name in plugins.available(plugins.ENGINES) if name not in JUDGE_CLASSES]
    named = _named_classes(JUDGE_OPTIONS, JudgeConfig, "engine", extra) if extra else {}
    return {**JUDGE_CLASSES, **{n: named.get(n) or _open_class(PluginJudge, "engine", n) for n in extra}}


def export_classes() -> dict[str, type[ExportConfig]]:
    """The built-in targets' options classes, and those of the targets installed packages add."""
    from .. import plugins

    extra = [name for name in plugins.available(plugins.EXPORTERS) if name not in EXPORT_CLASSES]
    named = _named_classes(EXPORT_OPTIONS, ExportConfig, "target", extra) if extra else {}
    return {**EXPORT_CLASSES, **{n: named.get(n) or _open_class(PluginExport, "target", n) for n in extra}}
