"""Where a model is built: its `schema` and `alias` config, through dbt's generate_schema_name and
generate_alias_name macros (prefclean/macros/relation_names.sql; a project macro of the same name replaces them).

As in dbt-duckdb, `schema: staging` builds in `main_staging` and `alias: orders` names the relation; ref() and
`this` resolve to it. Two models that would build the same relation are an error naming both.
"""

from __future__ import annotations

from typing import Any

import jinja2

from .context import MACRO_CALLS, MacroReturn
from .errors import CompileError
from .warehouse import META_SCHEMA, MODELS_SCHEMA, SOURCES_SCHEMA

# Schemas prefclean fills itself: a model built there would be overwritten, or overwrite them.
RESERVED_SCHEMAS = (SOURCES_SCHEMA, META_SCHEMA, "human", "information_schema", "pg_catalog")


def _node(model: Any) -> dict[str, Any]:
    """What dbt passes as `node`, as far as naming macros read it."""
    return {"name": model.name, "resource_type": model.resource_type, "config": model.config,
            "original_file_path": str(model.path), "path": str(model.path), "tags": model.config.get("tags") or [],
            "fqn": [*model.path.with_suffix("").parts[1:]] or [model.name], "unique_id": f"{model.resource_type}.{model.name}"}


def _call(namespace: dict[str, Any], macro: str, owner: str, value: Any, model: Any) -> str:
    fn = namespace.get(macro)
    if not isinstance(fn, jinja2.runtime.Macro):
        raise CompileError(f"{owner}: the macro {macro} is not defined")
    if MACRO_CALLS:  # (called from here, not from a template: recorded by hand)
        MACRO_CALLS[-1].add(macro)
    try:
        out = fn(value, _node(model))
    except MacroReturn as returned:  # dbt's return(): the macro's value
        out = returned.value
    except CompileError:
        raise
    except jinja2.TemplateError as exc:
        raise CompileError(f"{owner}: {macro}: {exc}") from None
    text = str(out if out is not None else "").strip()
    if not text:
        raise CompileError(f"{owner}: {macro} returned an empty name")
    return text


def _text(owner: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CompileError(f"{owner}: `{key}` should be a name (text), not {value!r}")
    return value


def failures_schema(namespace: dict[str, Any], test: Any, owner: str) -> str:
    """Where a data test stores its failing rows: its `schema` config, else dbt's `dbt_test__audit`, through
    generate_schema_name (so main_dbt_test__audit by default, as in dbt-duckdb)."""
    custom = _text(owner, "schema", test.config.get("schema")) or "dbt_test__audit"
    schema = _call(namespace, "generate_schema_name", owner, custom, test)
    if schema.lower() in RESERVED_SCHEMAS:
        raise CompileError(f"{owner}: schema '{schema}' is prefclean's own (reserved: {', '.join(RESERVED_SCHEMAS)})")
    return schema


def resolve(namespace: dict[str, Any], model: Any, owner: str) -> tuple[str, str]:
    """(schema, identifier) for a model or seed from its merged config."""
    schema = _text(owner, "schema", model.config.get("schema"))
    alias = _text(owner, "alias", model.config.get("alias"))
    if schema is None and alias is None and not _overridden(namespace):
        return MODELS_SCHEMA, model.name  # the common case, without rendering two macros per model
    schema_name = _call(namespace, "generate_schema_name", owner, schema, model)
    identifier = _call(namespace, "generate_alias_name", owner, alias, model)
    if schema_name.lower() in RESERVED_SCHEMAS:
        raise CompileError(f"{owner}: schema '{schema_name}' is prefclean's own (reserved: "
                           f"{', '.join(RESERVED_SCHEMAS)}); choose another `schema`")
    return schema_name, identifier


def _overridden(namespace: dict[str, Any]) -> bool:
    """A project macro replaces a naming macro (it may name every model, custom schema or not)."""
    return any(getattr(namespace.get(m), "_prefclean_project", False)
               for m in ("generate_schema_name", "generate_alias_name"))


def check_unique(models: dict[str, Any]) -> None:
    """Two models (or seeds) resolving to the same relation would overwrite each other; DuckDB's names are
    case-insensitive, so `Orders` and `orders` collide too."""
    seen: dict[tuple[str, str], Any] = {}
    for model in models.values():
        if model.materialized == "ephemeral":
            continue  # inlined: no relation
        key = (model.schema.lower(), model.identifier.lower())
        other = seen.setdefault(key, model)
        if other is not model:
            raise CompileError(f"{other.resource_type} '{other.name}' ({other.path}) and {model.resource_type} "
                               f"'{model.name}' ({model.path}) would both build {model.schema}.{model.identifier}; "
                               "give one of them another `alias` or `schema`")
