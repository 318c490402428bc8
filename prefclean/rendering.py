"""What a model sees while it renders: ref(), source(), var(), config() (with .get / .require), env_var(), log(),
run_query() and is_incremental(), bound to the model; each records what the model depends on or sets."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import duckdb

from . import modelconfig
from .context import QueryResult, Relation, env_var
from .errors import CompileError
from .warehouse import SOURCES_SCHEMA

if TYPE_CHECKING:
    from .compiler import Compiler, Model

MATERIALIZATIONS = ("view", "table", "incremental", "ephemeral")
ON_SCHEMA_CHANGE = ("fail", "append_new_columns", "sync_all_columns")  # dbt's, less `ignore`


def check_on_schema_change(owner: str, mode: Any) -> None:
    if mode is not None and mode not in ON_SCHEMA_CHANGE:
        why = (" (dbt's default: it would silently leave new columns out; prefclean fails by default and says so)"
               if mode == "ignore" else "")
        raise CompileError(f"{owner}: on_schema_change='{mode}' is not supported by prefclean{why}; use one of "
                           f"{', '.join(ON_SCHEMA_CHANGE)}")


def suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else (f"; known: {', '.join(sorted(choices))}" if choices else "")


class RenderContext:
    """The functions a model sees while it renders; records refs, sources and config."""

    def __init__(self, compiler: Compiler, model: Model, incremental: bool):
        self.compiler, self.model, self.incremental = compiler, model, incremental
        self.set_keys: set[str] = set()  # what the model's own config() calls set

    @property
    def owner(self) -> str:
        return f"model '{self.model.name}' ({self.model.path})"

    def ref(self, name: str, *more: str, **kwargs: Any) -> Relation:
        version = kwargs.pop("v", kwargs.pop("version", None))
        if version is not None:
            raise CompileError(f"{self.owner}: ref('{more[-1] if more else name}', v={version!r}): model versions are "
                               "not supported by prefclean (name each version as its own model)")
        if kwargs:
            raise CompileError(f"{self.owner}: ref() takes no argument {', '.join(sorted(kwargs))}")
        if len(more) > 1:
            raise CompileError(f"{self.owner}: ref() takes a model name, or a package and a model name")
        name = more[-1] if more else name  # dbt allows ref('package', 'model')
        if name in self.compiler.disabled:
            raise CompileError(f"{self.owner}: ref('{name}') names a disabled model (enabled: false); enable it "
                               "or remove the ref")
        if name not in self.compiler.model_names:
            raise CompileError(f"{self.owner}: ref('{name}') names no model"
                               + suggest(name, self.compiler.model_names))
        self.model.refs.add(name)
        database = self.compiler.project.warehouse.stem
        parent = self.compiler.models[name]
        mock = self.compiler.mocks.get(("ref", name))
        if mock is not None:  # a unit test's given rows
            return Relation(parent.schema, parent.identifier, database, sql=f"({mock}\n)")
        if self.compiler.ephemeral.get(name) is not None:  # the newline ends a trailing -- comment
            return Relation(parent.schema, parent.identifier, database, sql=f"({self.compiler.ephemeral[name]}\n)")
        return Relation(parent.schema, parent.identifier, database)

    def source(self, name: str, table: str | None = None) -> Relation:
        name = table or name  # source('group', 'table') reads as the table name
        if name not in self.compiler.project.sources:
            raise CompileError(f"{self.owner}: source('{name}') is not in prefclean.yml"
                               + suggest(name, list(self.compiler.project.sources)))
        self.model.sources.add(name)
        mock = self.compiler.mocks.get(("source", name))
        return Relation(SOURCES_SCHEMA, name, self.compiler.project.warehouse.stem,
                        sql=f"({mock}\n)" if mock is not None else None)

    def env_var(self, name: str, default: Any = None) -> str:
        return env_var(self.owner, name, default)

    def log(self, message: Any, info: bool = False) -> str:
        return self.compiler.logger(self.model.name, message, info)

    def run_query(self, sql: str) -> QueryResult | None:
        """dbt's run_query(): runs while models build (`execute` is true), returns None while parsing."""
        self.model.runs_queries = True
        if not self.compiler.executing or self.compiler.connection is None:
            return None
        try:
            cursor = self.compiler.connection.execute(str(sql))
            rows = cursor.fetchall() if cursor.description else []
            names = [d[0] for d in cursor.description or []]
        except duckdb.Error as exc:
            raise CompileError(f"{self.owner}: run_query failed: {' '.join(str(exc).split())}") from None
        return QueryResult(names, rows)

    _NO_DEFAULT = object()

    def var(self, name: str, default: Any = _NO_DEFAULT) -> Any:
        if name in self.compiler.var_overrides:
            return self.compiler.var_overrides[name]
        if name in self.compiler.project.vars:
            return self.compiler.project.vars[name]
        if default is self._NO_DEFAULT:
            raise CompileError(f"model '{self.model.name}' ({self.model.path}): var('{name}') is not set and has no default "
                               f"(set it under `vars:` in prefclean.yml or pass --vars '{{\"{name}\": ...}}')")
        return default

    def config(self, **kwargs: Any) -> str:
        materialized = kwargs.get("materialized", self.model.materialized)
        if materialized not in MATERIALIZATIONS:
            raise CompileError(f"model '{self.model.name}' ({self.model.path}): materialized='{materialized}' "
                               f"is not one of {', '.join(MATERIALIZATIONS)}")
        check_on_schema_change(self.owner, kwargs.get("on_schema_change"))
        self.model.materialized = materialized
        self.model.unique_key = kwargs.get("unique_key", self.model.unique_key)
        self.model.config = modelconfig.merge(self.model.config, kwargs)
        self.set_keys |= set(modelconfig.normalize(kwargs))
        return ""

    def is_incremental(self) -> bool:
        if "is_incremental" in self.compiler.macro_overrides:  # a unit test's overrides.macros
            return bool(self.compiler.macro_overrides["is_incremental"])
        return self.incremental and self.model.materialized == "incremental"


class Config:
    """dbt's `config`: config(key=value, ...) or config({...}) sets, config.get(key, default) and
    config.require(key) read the model's config as known so far (folder, property file, earlier calls)."""

    def __init__(self, ctx: RenderContext):
        self._ctx = ctx

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        if len(args) > 1 or args and not isinstance(args[0], dict):
            raise CompileError(f"{self._ctx.owner}: config() takes key=value arguments, or one mapping")
        return self._ctx.config(**{**(args[0] if args else {}), **kwargs})

    def get(self, key: str, default: Any = None) -> Any:
        model = self._ctx.model
        value = model.materialized if key == "materialized" else model.config.get(key)
        return default if value is None else value

    def require(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise CompileError(f"{self._ctx.owner}: config.require('{key}'): `{key}` is not set")
        return value
