"""prefclean.yml -> a typed Project. Validation names the key path at fault."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .errors import PrefcleanError, ProjectError
from .vars import check_var_types

PROJECT_FILE = "prefclean.yml"
SOURCE_TYPES = ("parquet", "jsonl", "csv", "duckdb", "huggingface", "inline")
# Sources that can be a view over their files instead of a copy; Parquet is one by default, since DuckDB
# reads it about as fast as its own tables (copying it only doubled the disk and the staging time).
SOURCE_VIEW_TYPES = ("parquet", "jsonl", "csv")
_EXTENSION_TYPES = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}


@dataclass(frozen=True)
class SourceConfig:
    name: str
    type: str
    path: str | None = None  # file path or glob (relative to the project), DuckDB file, or HF dataset id
    table: str | None = None  # for type duckdb
    hf_name: str | None = None  # HF dataset config name
    split: str | None = None  # HF split, slicing allowed: train[:20]
    rows: tuple[dict, ...] = ()  # for type inline
    columns: dict[str, str] = field(default_factory=dict)  # rename: original -> new
    options: dict[str, Any] = field(default_factory=dict)  # passed to the DuckDB reader
    materialized: str = "table"  # or "view": files read in place (see SOURCE_VIEW_TYPES)
    format: str | None = None  # a dataset format (prefclean/formats/); None: detected when a model asks


@dataclass(frozen=True)
class JudgeConfig:
    name: str
    engine: str
    model: str | None = None
    base_urls: tuple[str, ...] = ()
    api_key_env: str | None = None
    max_tokens: int = 512
    temperature: float = 0.7
    seed: int | None = None
    top_p: float | None = None
    timeout: float = 120.0
    concurrency: int = 8
    max_retries: int = 4
    parse_retries: int = 2
    requests_per_minute: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str | None:
        return self.base_urls[0] if self.base_urls else None


@dataclass(frozen=True)
class ExportConfig:
    name: str
    model: str
    target: str  # parquet | jsonl | csv | hub | argilla
    options: dict[str, Any] = field(default_factory=dict)
    on_build: bool = True  # false: only `prefclean export NAME` runs it (e.g. a push that needs the network)


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
    executor: dict[str, Any] = field(default_factory=dict)

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


def _expect(value: Any, kind: type | tuple[type, ...], path: str, what: str) -> Any:
    if not isinstance(value, kind):
        got = type(value).__name__ if value is not None else "nothing"
        raise ProjectError(f"{PROJECT_FILE}: `{path}` must be {what}, got {got}")
    return value


def parse_vars(text: str | None) -> dict[str, Any]:
    """Parse --vars: JSON or YAML mapping, as dbt accepts."""
    if not text:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProjectError(f"--vars is not valid YAML/JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProjectError(f"--vars must be a mapping like '{{\"seed\": 7}}', got {json.dumps(value)}")
    return value


def _parse_source(name: str, raw: Any, root: Path) -> SourceConfig:
    path = f"sources.{name}"
    raw = _expect(raw, dict, path, "a mapping")
    known = {"type", "path", "table", "name", "split", "rows", "columns", "options", "materialized", "format"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ProjectError(f"{PROJECT_FILE}: unknown key `{path}.{unknown[0]}` (expected one of {', '.join(sorted(known))})")
    kind = raw.get("type")
    if kind is None:
        if "rows" in raw:
            kind = "inline"
        elif isinstance(raw.get("path"), str):
            kind = _EXTENSION_TYPES.get(Path(raw["path"].replace("*", "x")).suffix.lower())
        if kind is None:
            raise ProjectError(f"{PROJECT_FILE}: `{path}.type` is missing and cannot be inferred (one of {', '.join(SOURCE_TYPES)})")
    if kind not in SOURCE_TYPES:
        raise ProjectError(f"{PROJECT_FILE}: `{path}.type` is '{kind}', expected one of {', '.join(SOURCE_TYPES)}")
    columns = _expect(raw.get("columns") or {}, dict, f"{path}.columns", "a mapping of old: new column names")
    options = _expect(raw.get("options") or {}, dict, f"{path}.options", "a mapping")
    materialized = raw.get("materialized", "view" if kind == "parquet" else "table")
    if materialized not in ("view", "table"):
        raise ProjectError(f"{PROJECT_FILE}: `{path}.materialized` is {materialized!r}, expected 'view' or 'table'")
    if materialized == "view" and kind not in SOURCE_VIEW_TYPES:
        article = "an" if kind[0] in "aeiou" else "a"
        raise ProjectError(f"{PROJECT_FILE}: `{path}.materialized` cannot be 'view' for {article} {kind} source "
                           f"(only {', '.join(SOURCE_VIEW_TYPES)} files can be read in place)")
    fmt = raw.get("format")
    if fmt is not None:
        from .formats import get_format

        try:
            get_format(_expect(fmt, str, f"{path}.format", "a format name"))
        except PrefcleanError as exc:
            raise ProjectError(f"{PROJECT_FILE}: `{path}.format`: {exc}") from None
    rows = raw.get("rows") or []
    if kind == "inline":
        _expect(rows, list, f"{path}.rows", "a list of mappings")
        for i, row in enumerate(rows):
            _expect(row, dict, f"{path}.rows[{i}]", "a mapping")
    elif kind == "duckdb":
        _expect(raw.get("path"), str, f"{path}.path", "the path of a DuckDB file")
        _expect(raw.get("table"), str, f"{path}.table", "a table name")
    else:
        _expect(raw.get("path"), str, f"{path}.path", "a string")
    return SourceConfig(
        name=name,
        type=kind,
        path=raw.get("path"),
        table=raw.get("table"),
        hf_name=raw.get("name"),
        split=raw.get("split"),
        rows=tuple(rows),
        columns={str(k): str(v) for k, v in columns.items()},
        options=options,
        materialized=materialized,
        format=fmt,
    )


_JUDGE_FIELDS = {
    "engine", "model", "base_url", "base_urls", "api_key_env", "max_tokens", "max_new_tokens", "temperature",
    "seed", "top_p", "timeout", "concurrency", "max_retries", "parse_retries", "requests_per_minute",
}


def _parse_judge(name: str, raw: Any) -> JudgeConfig:
    path = f"judges.{name}"
    raw = _expect(raw, dict, path, "a mapping")
    engine = _expect(raw.get("engine"), str, f"{path}.engine", "an engine name (openai, hf-inference, llamacpp)")
    urls = raw.get("base_urls", raw.get("base_url"))
    if isinstance(urls, str):
        urls = [urls]
    urls = _expect(urls or [], list, f"{path}.base_url", "a URL or a list of URLs")
    numbers = {}
    for key, kind, default in (
        ("max_tokens", int, 512), ("temperature", (int, float), 0.7), ("timeout", (int, float), 120.0),
        ("concurrency", int, 8), ("max_retries", int, 4), ("parse_retries", int, 2),
    ):
        value = raw.get(key, raw.get("max_new_tokens", default) if key == "max_tokens" else default)
        numbers[key] = _expect(value, kind, f"{path}.{key}", "a number")
    if numbers["concurrency"] < 1:
        raise ProjectError(f"{PROJECT_FILE}: `{path}.concurrency` must be at least 1")
    rpm = raw.get("requests_per_minute")
    if rpm is not None:
        _expect(rpm, (int, float), f"{path}.requests_per_minute", "a number")
    return JudgeConfig(
        name=name,
        engine=engine,
        model=raw.get("model"),
        base_urls=tuple(str(u).rstrip("/") for u in urls),
        api_key_env=raw.get("api_key_env"),
        seed=raw.get("seed"),
        top_p=raw.get("top_p"),
        requests_per_minute=rpm,
        options={k: v for k, v in raw.items() if k not in _JUDGE_FIELDS},
        **numbers,
    )


def _anchor_gguf(root: Path, judge: JudgeConfig) -> JudgeConfig:
    """A GGUF path in prefclean.yml is relative to the project, like every other path there."""
    model = judge.model
    if judge.engine == "llamacpp" and model and model.endswith(".gguf") and not Path(model).expanduser().is_absolute():
        return replace(judge, model=str(root / model))
    return judge


def _parse_export(name: str, raw: Any) -> ExportConfig:
    path = f"exports.{name}"
    raw = _expect(raw, dict, path, "a mapping")
    model = _expect(raw.get("model"), str, f"{path}.model", "the name of a model")
    target = _expect(raw.get("target"), str, f"{path}.target", "parquet, jsonl, csv, hub or argilla")
    on_build = _expect(raw.get("on_build", True), bool, f"{path}.on_build", "true or false")
    return ExportConfig(name=name, model=model, target=target, on_build=on_build,
                        options={k: v for k, v in raw.items() if k not in ("model", "target", "on_build")})


def load_project(project_dir: str | Path = ".", cli_vars: dict[str, Any] | None = None) -> Project:
    root = Path(project_dir).resolve()
    path = root / PROJECT_FILE
    if not path.exists():
        raise ProjectError(f"no {PROJECT_FILE} in {root} (run `prefclean init DIR` to make a project, or pass --project-dir)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProjectError(f"{path.name}{where}: invalid YAML: {problem}") from None
    raw = _expect(raw, dict, "<top level>", "a mapping")
    known = {"name", "warehouse", "target_dir", "vars", "sources", "judges", "default_judge", "exports", "executor", "version"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ProjectError(f"{PROJECT_FILE}: unknown top-level key `{unknown[0]}` (expected one of {', '.join(sorted(known))})")
    name = _expect(raw.get("name", root.name), str, "name", "a string")
    warehouse = root / _expect(raw.get("warehouse", "target/prefclean.duckdb"), str, "warehouse", "a path")
    target_dir = root / _expect(raw.get("target_dir", "target"), str, "target_dir", "a path")
    vars_ = dict(_expect(raw.get("vars") or {}, dict, "vars", "a mapping"))
    check_var_types(vars_, cli_vars or {})
    vars_.update(cli_vars or {})
    sources = {str(k): _parse_source(str(k), v, root) for k, v in _expect(raw.get("sources") or {}, dict, "sources", "a mapping").items()}
    judges = {str(k): _anchor_gguf(root, _parse_judge(str(k), v))
              for k, v in _expect(raw.get("judges") or {}, dict, "judges", "a mapping").items()}
    exports = {str(k): _parse_export(str(k), v) for k, v in _expect(raw.get("exports") or {}, dict, "exports", "a mapping").items()}
    default_judge = raw.get("default_judge")
    if default_judge is not None and default_judge not in judges:
        raise ProjectError(f"{PROJECT_FILE}: `default_judge` is '{default_judge}', which is not in `judges`")
    executor = raw.get("executor") or {}
    if isinstance(executor, str):
        executor = {"type": executor}
    _expect(executor, dict, "executor", "'local', 'ray' or a mapping")
    return Project(root=root, name=name, warehouse=warehouse, target_dir=target_dir, vars=vars_, sources=sources,
                   judges=judges, exports=exports, default_judge=default_judge, executor=executor)
