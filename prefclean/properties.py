"""dbt's property files (models/**/*.yml): model descriptions and the data tests declared on models and columns.

    version: 2
    models:
      - name: pair_decisions
        description: one row per pair
        data_tests:                               # or `tests:` (dbt < 1.8); model level
          - expression: {expression: "chosen_rating between 1 and 5", config: {severity: warn}}
        columns:
          - name: pair_id
            data_tests: [not_null, unique]
          - name: decision
            data_tests:
              - accepted_values:
                  arguments: {values: [keep, flip, drop]}   # dbt 1.10's form; bare arguments work too
                  config: {where: "pair_id is not null", error_if: ">10"}

Every key is either read or an error naming it: nothing a dbt user writes is silently ignored.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .docs import load_docs, render_description
from .errors import ProjectError
from .yamlfile import DuplicateKeyError, load_yaml

# Test config, as dbt reads it from `config:` or (older projects) beside the arguments.
TEST_CONFIG_KEYS = ("severity", "where", "error_if", "warn_if", "store_failures", "store_failures_as", "limit",
                    "fail_calc", "enabled", "tags", "meta", "alias", "schema")
UNSUPPORTED_TEST_CONFIG = ("database",)
MODEL_KEYS = ("name", "description", "columns", "tests", "data_tests", "meta", "config")
COLUMN_KEYS = ("name", "description", "tests", "data_tests", "meta", "data_type", "tags", "quote")
UNSUPPORTED_MODEL_KEYS = ("constraints", "versions", "latest_version", "access", "group", "docs",
                          "deprecation_date", "time_spine", "tags")
TOP_LEVEL_KEYS = ("version", "models", "seeds", "unit_tests")
UNSUPPORTED_TOP_LEVEL = ("snapshots", "analyses", "macros", "exposures", "metrics", "semantic_models",
                         "saved_queries", "groups", "data_tests")
UNIT_TEST_KEYS = ("name", "model", "given", "expect", "overrides", "config", "description")
UNIT_INPUT_KEYS = ("input", "rows", "format")
UNIT_OVERRIDE_KEYS = ("vars", "macros", "env_vars")


@dataclass
class TestSpec:
    """One generic test as declared: which test, on what, with which arguments and config."""

    kind: str  # not_null, unique, ... or a {% test %} block's name
    model: str
    column: str | None
    arguments: dict[str, Any]
    config: dict[str, Any]
    path: str  # the property file
    name: str | None = None
    description: str = ""


@dataclass
class ModelProperties:
    name: str
    path: str
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # checked by the compiler, with config()'s
    kind: str = "model"  # or "seed"


@dataclass
class UnitTestSpec:
    """dbt's unit test: given rows for the model's inputs, the rows it must return."""

    name: str
    model: str
    given: list[dict[str, Any]]  # each: input (ref('m') | source('s', 't') | this), rows, format
    expect: dict[str, Any]  # rows, format
    overrides: dict[str, dict[str, Any]]
    config: dict[str, Any]
    path: str
    description: str = ""


@dataclass
class Properties:
    models: dict[str, ModelProperties] = field(default_factory=dict)  # models and seeds, by name
    tests: list[TestSpec] = field(default_factory=list)
    unit_tests: list[UnitTestSpec] = field(default_factory=list)
    docs: dict[str, str] = field(default_factory=dict)  # {% docs %} blocks of models/**/*.md, for doc()


def _unknown(where: str, key: str, known: tuple[str, ...], unsupported: tuple[str, ...], hint: str = "") -> ProjectError:
    if key in unsupported:
        return ProjectError(f"{where}: `{key}` is not supported by prefclean{hint}")
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return ProjectError(f"{where}: unknown key `{key}`" + (f"; did you mean `{close[0]}`?" if close else
                                                         f" (known: {', '.join(known)})"))


def _read_yaml(path: Path, shown: str) -> Any:
    try:
        return load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = f": {exc.problem}" if isinstance(exc, DuplicateKeyError) else ""
        raise ProjectError(f"{shown}{f' line {mark.line + 1}' if mark else ''}: invalid YAML{problem}") from None


def _test_list(owner: dict, where: str) -> list:
    if "tests" in owner and "data_tests" in owner:
        raise ProjectError(f"{where}: has both `tests:` and `data_tests:`; keep one (dbt >= 1.8 calls them data_tests)")
    tests = owner.get("data_tests", owner.get("tests")) or []
    if not isinstance(tests, list):
        raise ProjectError(f"{where}: `data_tests:` must be a list of tests")
    return tests


def parse_test(entry: Any, model: str, column: str | None, path: str, where: str) -> TestSpec:
    """`not_null`, `{unique: {config: ...}}`, `{accepted_values: {values: [...], severity: warn}}` or
    `{accepted_values: {arguments: {values: [...]}, config: {...}, name: ..., description: ...}}`."""
    if isinstance(entry, str):
        return TestSpec(entry, model, column, {}, {}, path)
    if not (isinstance(entry, dict) and len(entry) == 1):
        raise ProjectError(f"{where}: a test must be a name or a one-key mapping, got {entry!r}")
    kind, body = next(iter(entry.items()))
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise ProjectError(f"{where}: the arguments of test {kind} must be a mapping, got {body!r}")
    body = dict(body)
    name, description = body.pop("name", None), body.pop("description", "")
    config = body.pop("config", None) or {}
    if not isinstance(config, dict):
        raise ProjectError(f"{where}: test {kind}: `config:` must be a mapping")
    config = dict(config)
    if "arguments" in body:
        arguments = body.pop("arguments") or {}
        if not isinstance(arguments, dict):
            raise ProjectError(f"{where}: test {kind}: `arguments:` must be a mapping")
        arguments, beside = dict(arguments), body  # beside `arguments:`, only config may stand
    else:
        arguments, beside = body, {k: body[k] for k in body if k in TEST_CONFIG_KEYS + UNSUPPORTED_TEST_CONFIG}
        for key in beside:
            del arguments[key]
    for key, value in beside.items():  # config beside the arguments: dbt's older spelling, still accepted
        if key not in TEST_CONFIG_KEYS + UNSUPPORTED_TEST_CONFIG:
            raise _unknown(f"{where}: test {kind}", key, TEST_CONFIG_KEYS + ("arguments", "config", "name", "description"),
                           (), "")
        config.setdefault(key, value)
    for key in config:
        if key not in TEST_CONFIG_KEYS:
            raise _unknown(f"{where}: test {kind} config", key, TEST_CONFIG_KEYS, UNSUPPORTED_TEST_CONFIG)
    return TestSpec(str(kind), model, column, arguments, config, path, name, str(description or ""))


def load_properties(root: Path, models_dir: Path, model_names: list[str], seed_names: list[str] = ()) -> Properties:
    props = Properties(docs=load_docs(root, [models_dir, root / "seeds"]))
    files = [f for folder in (models_dir, root / "seeds") if folder.exists()
             for f in sorted(folder.rglob("*.yml")) + sorted(folder.rglob("*.yaml"))]
    for file in files:
        path = str(file.relative_to(root))
        doc = _read_yaml(file, path)
        if not isinstance(doc, dict) or not all(isinstance(doc.get(k) or [], list) for k in ("models", "seeds")):
            raise ProjectError(f"{path}: expected `models:` followed by a list of models and their tests")
        for key in doc:
            if key not in TOP_LEVEL_KEYS:
                hint = " (declare sources in prefclean.yml under `sources:`)" if key == "sources" else ""
                raise _unknown(path, key, TOP_LEVEL_KEYS, UNSUPPORTED_TOP_LEVEL + ("sources",), hint)
        for i, entry in enumerate(doc.get("models") or []):
            _read_model(props, entry, i, path, list(model_names), "model")
        for i, entry in enumerate(doc.get("seeds") or []):
            _read_model(props, entry, i, path, list(seed_names), "seed")
        if not isinstance(doc.get("unit_tests") or [], list):
            raise ProjectError(f"{path}: `unit_tests:` must be a list")
        for i, entry in enumerate(doc.get("unit_tests") or []):
            props.unit_tests.append(_read_unit_test(entry, i, path, list(model_names)))
    for spec in props.tests + props.unit_tests:
        spec.description = render_description(spec.description, props.docs, f"{spec.path}: test {spec.name or ''}")
    return props


def _read_model(props: Properties, entry: Any, i: int, path: str, model_names: list[str], kind: str) -> None:
    name = entry.get("name") if isinstance(entry, dict) else None
    if name not in model_names:
        close = difflib.get_close_matches(str(name), model_names, n=1, cutoff=0.5)
        where_ = " (seeds are seeds/*.csv)" if kind == "seed" else ""
        raise ProjectError(f"{path}: {kind}s[{i}] names unknown {kind} '{name}'{where_}"
                           + (f"; did you mean '{close[0]}'?" if close else ""))
    where = f"{path}: {kind} '{name}'"
    for key in entry:
        if key not in MODEL_KEYS:
            raise _unknown(where, key, MODEL_KEYS, UNSUPPORTED_MODEL_KEYS)
    if name in props.models:
        raise ProjectError(f"{where}: also described in {props.models[name].path}; describe a model once")
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise ProjectError(f"{where}: `config:` must be a mapping")
    description = render_description(str(entry.get("description") or ""), props.docs, where)
    model = props.models[name] = ModelProperties(name, path, description,
                                                 dict(entry.get("meta") or {}), config=dict(config), kind=kind)
    props.tests += [parse_test(t, name, None, path, where) for t in _test_list(entry, where)]
    columns = entry.get("columns") or []
    if not isinstance(columns, list):
        raise ProjectError(f"{where}: `columns:` must be a list")
    for c, column in enumerate(columns):
        if not isinstance(column, dict) or not column.get("name"):
            raise ProjectError(f"{where}: columns[{c}] needs `name:` (and `data_tests:`)")
        col_where = f"{where} column {column['name']}"
        for key in column:
            if key not in COLUMN_KEYS:
                raise _unknown(col_where, key, COLUMN_KEYS, ("constraints", "policy_tags", "granularity", "config"))
        if column.get("quote") is False:
            raise ProjectError(f"{col_where}: `quote: false` is not supported by prefclean (column names are always "
                               "quoted; pass an expression as a test's `column_name:` argument instead)")
        model.columns[column["name"]] = {k: v for k, v in column.items() if k not in ("tests", "data_tests")}
        if "description" in column:
            model.columns[column["name"]]["description"] = render_description(str(column["description"] or ""),
                                                                              props.docs, col_where)
        tags = column.get("tags") or []
        for t in _test_list(column, col_where):
            spec = parse_test(t, name, column["name"], path, col_where)
            if tags:
                spec.config["tags"] = list(spec.config.get("tags") or []) + list(tags)
            props.tests.append(spec)


def _rows_spec(spec: Any, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ProjectError(f"{where}: expected a mapping with `rows:`")
    for key in spec:
        if key not in keys:
            hint = " (fixture files are not supported by prefclean; write the rows inline)" if key == "fixture" else ""
            raise _unknown(where, key, keys, ("fixture",), hint)
    fmt = spec.get("format", "dict")
    if fmt not in ("dict", "csv", "sql"):
        raise ProjectError(f"{where}: format '{fmt}' should be dict, csv or sql")
    rows = spec.get("rows", [])
    if fmt == "dict" and not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
        raise ProjectError(f"{where}: `rows:` should be a list of mappings (column: value) with format dict")
    if fmt in ("csv", "sql") and not isinstance(rows, str):
        raise ProjectError(f"{where}: `rows:` should be text with format {fmt}")
    return {**spec, "format": fmt, "rows": rows}


def _read_unit_test(entry: Any, i: int, path: str, model_names: list[str]) -> UnitTestSpec:
    name = entry.get("name") if isinstance(entry, dict) else None
    where = f"{path}: unit_tests[{i}]" + (f" ({name})" if name else "")
    if not name:
        raise ProjectError(f"{where}: needs `name:`")
    for key in entry:
        if key not in UNIT_TEST_KEYS:
            raise _unknown(where, key, UNIT_TEST_KEYS, ("versions",))
    model = entry.get("model")
    if model not in model_names:
        close = difflib.get_close_matches(str(model), model_names, n=1, cutoff=0.5)
        raise ProjectError(f"{where}: `model: {model}` names no model" + (f"; did you mean '{close[0]}'?" if close else ""))
    given = entry.get("given") or []
    if not isinstance(given, list):
        raise ProjectError(f"{where}: `given:` should be a list of inputs")
    inputs = []
    for g, item in enumerate(given):
        spec = _rows_spec(item, f"{where} given[{g}]", UNIT_INPUT_KEYS)
        if not isinstance(spec.get("input"), str):
            raise ProjectError(f"{where} given[{g}]: needs `input: ref('model')`, `source('name', 'table')` or `this`")
        inputs.append(spec)
    if "expect" not in entry:
        raise ProjectError(f"{where}: needs `expect:` with the rows the model should return")
    expect = _rows_spec(entry.get("expect") or {}, f"{where} expect", ("rows", "format"))
    overrides = entry.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ProjectError(f"{where}: `overrides:` should be a mapping")
    for key, value in overrides.items():
        if key not in UNIT_OVERRIDE_KEYS:
            raise _unknown(f"{where} overrides", key, UNIT_OVERRIDE_KEYS, ())
        if not isinstance(value, dict):
            raise ProjectError(f"{where}: overrides.{key} should be a mapping")
    config = entry.get("config") or {}
    for key in config:
        if key not in ("tags", "enabled", "meta"):
            raise _unknown(f"{where} config", key, ("tags", "enabled", "meta"), ())
    return UnitTestSpec(str(name), model, inputs, expect, overrides, dict(config), path,
                        str(entry.get("description") or ""))
