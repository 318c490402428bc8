"""prefclean.yml -> a Project: the file checked against typed models, paths resolved against the project."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import BeforeValidator, Field, ValidationError, create_model

from ..errors import ProjectError
from ..yamlfile import load_yaml
from .base import PROJECT_FILE, ConfigModel, ErrorContext, did_you_mean, project_error
from .executor import ExecutorConfig, executor_from_text
from .exports import ExportConfig, export_union
from .judges import JudgeConfig, judge_union
from .plugins import export_classes, judge_classes
from .sources import SOURCE_CLASSES, SourceConfig, source_union
from .variables import check_reserved, merge_vars


def _mapping(value: Any) -> Any:
    return {} if value is None else value  # `judges:` with nothing under it


def _statements(value: Any) -> Any:
    return [] if value is None else [value] if isinstance(value, str) else value  # one statement or a list


class ProjectSettings(ConfigModel):
    """The top level of prefclean.yml (sources, judges and exports are added per registered kind)."""

    name: str | None = Field(None, description="the project's name (default: its folder's name)")
    version: str | int | float | None = Field(None, description="your own version label; prefclean does not read it")
    warehouse: str = Field("target/prefclean.duckdb", description="the DuckDB file models are built in")
    target_dir: str = Field("target", description="where artifacts (summary.json, compiled SQL, exports) go")
    vars: Annotated[dict[str, Any], BeforeValidator(_mapping)] = Field(
        {}, description="values models read with var(); --vars may override only these (declare `name: null` "
                        "to allow one without a value)")
    default_judge: str | None = Field(None, description="the judge judge() uses when it names none")
    executor: Annotated[ExecutorConfig, BeforeValidator(executor_from_text)] = Field(
        ExecutorConfig(), description="where judge batches run: local or ray (a name or a mapping)")
    # dbt_project.yml's parts that prefclean does (checked against models/ and seeds/ when the project compiles).
    models: Annotated[dict[str, Any], BeforeValidator(_mapping)] = Field(
        {}, description="config for folders and models, as in dbt_project.yml: `staging: {+materialized: table}` "
                        "(keys with + are config, others folders or model names; deeper wins)")
    seeds: Annotated[dict[str, Any], BeforeValidator(_mapping)] = Field(
        {}, description="config for seeds/ folders and seeds: `+column_types`, `+delimiter`, `+enabled`, `+tags`")
    on_run_start: Annotated[list[str] | str, BeforeValidator(_statements)] = Field(
        [], description="SQL (Jinja) run before a build's first model, as dbt's on-run-start")
    on_run_end: Annotated[list[str] | str, BeforeValidator(_statements)] = Field(
        [], description="SQL (Jinja) run after a build's last model, even when one failed, as dbt's on-run-end")

    aliases: ClassVar[dict[str, str]] = {"on-run-start": "on_run_start", "on-run-end": "on_run_end"}


_MODELS: dict[tuple, type[ProjectSettings]] = {}


def file_model() -> type[ProjectSettings]:
    """The model of the whole file for the engines and targets known now (installed packages may add some)."""
    judges, exports = judge_classes(), export_classes()
    key = (tuple(SOURCE_CLASSES.items()), tuple(judges.items()), tuple(exports.items()))
    if key not in _MODELS:
        def section(union, what):
            return (Annotated[dict[str, union], BeforeValidator(_mapping)], Field({}, description=what))

        _MODELS[key] = create_model(
            "ProjectFile", __base__=ProjectSettings, __doc__="prefclean.yml",
            sources=section(source_union(), "the data the pipeline reads; each is sources.<name> in the warehouse"),
            judges=section(judge_union(judges), "named judges; `engine` picks the options each takes"),
            exports=section(export_union(exports), "where models' tables go: files, the Hugging Face Hub, Argilla"),
        )
    return _MODELS[key]


def error_context(raw: Any) -> ErrorContext:
    sections = {"sources": SOURCE_CLASSES, "judges": judge_classes(), "exports": export_classes()}
    return ErrorContext(raw, file_model(), sections,
                        {"executor": ExecutorConfig},
                        {"sources": "{a_kind} source", "judges": "the {kind} engine", "exports": "{a_kind} export"})


@dataclass
class Project:
    root: Path
    name: str
    warehouse: Path
    target_dir: Path
    vars: dict[str, Any]
    sources: dict[str, SourceConfig]
    judges: dict[str, JudgeConfig]
    exports: dict[str, ExportConfig]
    default_judge: str | None = None
    executor: dict[str, Any] = field(default_factory=dict)  # the `executor:` settings the file sets
    models_config: dict[str, Any] = field(default_factory=dict)  # `models:`, dbt_project.yml-style folder config
    seeds_config: dict[str, Any] = field(default_factory=dict)
    on_run_start: list[str] = field(default_factory=list)
    on_run_end: list[str] = field(default_factory=list)

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def macros_dir(self) -> Path:
        return self.root / "macros"

    @property
    def udfs_dir(self) -> Path:
        return self.root / "udfs"

    def shown(self, path: Path) -> Path:
        """A path as messages show it: relative to the project when inside it (target_dir may be elsewhere)."""
        return path.relative_to(self.root) if path.is_relative_to(self.root) else path

    @property
    def judgment_cache(self) -> Path:
        return self.warehouse.with_name("judgments.duckdb")


def read_file(path: Path) -> Any:
    try:
        return load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProjectError(f"{path.name}{where}: invalid YAML: {problem}") from None


def validate_file(raw: Any) -> ProjectSettings:
    """The checked file; a mistake is a ProjectError naming the key path."""
    if not isinstance(raw, dict):
        raise ProjectError(f"{PROJECT_FILE}: `<top level>` must be a mapping, got {type(raw).__name__}")
    for section in ("judges", "exports"):  # an entry's name is its key
        entries = raw.get(section)
        for key, entry in (entries.items() if isinstance(entries, dict) else ()):
            if isinstance(entry, dict) and "name" in entry:
                raise ProjectError(f"{PROJECT_FILE}: unknown key `{section}.{key}.name` (the name is the key, '{key}')")
    try:
        config = file_model().model_validate(raw)
    except ValidationError as exc:
        raise project_error(exc, error_context(raw)) from None
    check_reserved(config.vars)
    if config.default_judge is not None and config.default_judge not in config.judges:
        raise ProjectError(f"{PROJECT_FILE}: `default_judge` is '{config.default_judge}', which is not in `judges`"
                           + did_you_mean(config.default_judge, config.judges, quote="'"))
    check_escalations(config.judges)
    return config


def check_escalations(judges: dict[str, JudgeConfig]) -> None:
    """`escalate.to` names another judge of the file, one that does not escalate again (one step, no loops)."""
    for name, judge in judges.items():
        if judge.escalate is None:
            continue
        to, where = judge.escalate.to, f"{PROJECT_FILE}: `judges.{name}.escalate.to`"
        if to == name:
            raise ProjectError(f"{where} is '{to}', the judge itself: name a stronger judge")
        if to not in judges:
            raise ProjectError(f"{where} is '{to}', which is not in `judges`" + did_you_mean(to, judges, quote="'"))
        if judges[to].escalate is not None:
            raise ProjectError(f"{where} is '{to}', which escalates again (to '{judges[to].escalate.to}'): "
                               "escalation is one step")


def check_tokenizers(root: Path, judges: dict[str, JudgeConfig]) -> None:
    """`tokenizer:` is read only by `prefclean plan`; checked on load, so a wrong path is not silently ignored by
    every build and then reported by the plan as a failed model."""
    for name, judge in judges.items():
        if judge.tokenizer:
            path = Path(judge.tokenizer).expanduser()
            path = path if path.is_absolute() else root / path
            if not path.is_file():
                raise ProjectError(f"{PROJECT_FILE}: `judges.{name}.tokenizer`: no file {path} (a tokenizer.json, "
                                   "relative to the project)")


def _anchor_gguf(root: Path, judge: JudgeConfig) -> JudgeConfig:
    """A GGUF path in prefclean.yml is relative to the project, like every other path there."""
    model = judge.model
    if judge.engine == "llamacpp" and model and model.endswith(".gguf") and not Path(model).expanduser().is_absolute():
        return judge.model_copy(update={"model": str(root / model)})
    return judge


def load_project(project_dir: str | Path = ".", cli_vars: dict[str, Any] | None = None) -> Project:
    root = Path(project_dir).resolve()
    path = root / PROJECT_FILE
    if not path.exists():
        raise ProjectError(f"no {PROJECT_FILE} in {root} (run `prefclean init DIR` to make a project, or pass --project-dir)")
    config = validate_file(read_file(path))
    judges = {name: _anchor_gguf(root, judge.model_copy(update={"name": name})) for name, judge in config.judges.items()}
    check_tokenizers(root, judges)
    return Project(
        root=root,
        name=config.name or root.name,
        warehouse=root / config.warehouse,
        target_dir=root / config.target_dir,
        vars=merge_vars(config.vars, cli_vars),
        sources={name: source.named(name) for name, source in config.sources.items()},
        judges=judges,
        exports={name: export.model_copy(update={"name": name}) for name, export in config.exports.items()},
        default_judge=config.default_judge,
        executor=config.executor.settings(),
        models_config=dict(config.models),
        seeds_config=dict(config.seeds),
        on_run_start=list(config.on_run_start),
        on_run_end=list(config.on_run_end),
    )
