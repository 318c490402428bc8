"""The parts of dbt's Jinja context that are not about the model being rendered: relations, `env_var`, `target`,
`log`, `run_query`, `return`, `exceptions`, `adapter.dispatch`, `modules` and the pure helpers (`tojson`,
`fromjson`, `toyaml`, `fromyaml`, `local_md5`, `set`, `zip`).

compiler.py binds them to a model while it renders (see `_RenderContext`); this module only defines them.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import os
import re
import sys
from typing import Any, Callable

import jinja2
import yaml
from jinja2.runtime import Context, Macro

from .errors import CompileError
from .warehouse import quote


class Relation(str):
    """What ref(), source() and `this` return: renders as the quoted relation, and has dbt's attributes."""

    def __new__(cls, schema: str, identifier: str, database: str, sql: str | None = None):
        text = sql if sql is not None else f"{quote(schema)}.{quote(identifier)}"
        self = super().__new__(cls, text)
        self.schema, self.identifier, self.database = schema, identifier, database
        return self

    @property
    def name(self) -> str:
        return self.identifier

    @property
    def table(self) -> str:
        return self.identifier

    def render(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"<Relation {str(self)}>"


class MacroReturn(Exception):
    """Raised by `return(value)`; the macro call it is in returns value (dbt's way of returning data)."""

    def __init__(self, value: Any):
        super().__init__()
        self.value = value


def jinja_return(value: Any = None) -> Any:
    raise MacroReturn(value)


# The macros called while a model renders (compiler.py pushes a set per model; nested calls count too): its
# manifest's depends_on.macros, which state:modified.macros compares.
MACRO_CALLS: list[set[str]] = []


class MacroContext(Context):
    """A Jinja context whose macro calls honour `return()`: every call from a template goes through here."""

    def call(__self, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805  (Jinja's own signature)
        if isinstance(__obj, Macro):
            if MACRO_CALLS:
                MACRO_CALLS[-1].add(__obj.name)
            try:
                return super().call(__obj, *args, **kwargs)
            except MacroReturn as returned:
                return returned.value
        return super().call(__obj, *args, **kwargs)


SECRET_NAME = re.compile(r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|KEY)(_|$)|^DBT_ENV_SECRET_", re.I)


def env_var(owner: str, name: str, default: Any = None) -> str:
    """dbt's env_var(): the variable's value, else the default, else an error. Secrets are refused: the value
    would be written into compiled SQL, the manifest and the warehouse's view definitions."""
    if SECRET_NAME.search(name):
        raise CompileError(f"{owner}: env_var('{name}') looks like a secret; prefclean keeps secrets out of compiled "
                           "SQL (judges read their tokens from the environment themselves)")
    if name in os.environ:
        return os.environ[name]
    if default is not None:
        return str(default)
    raise CompileError(f"{owner}: env_var('{name}') is not set and has no default (set it, or write "
                       f"env_var('{name}', 'default'))")


TARGET_NAME = "dev"  # prefclean's one target: the warehouse prefclean.yml names (no profiles.yml, no targets:)


def target(project: Any, threads: int | None = None) -> dict[str, Any]:
    """dbt's `target`: prefclean has one target, the project's DuckDB warehouse; `threads` is DuckDB's setting
    on the build's connection (--threads N sets it)."""
    return {"name": TARGET_NAME, "type": "duckdb", "schema": "main", "database": project.warehouse.stem,
            "path": str(project.warehouse), "threads": threads, "profile_name": project.name,
            "target_name": TARGET_NAME}


def check_target(name: str | None) -> None:
    """--target NAME: dbt picks an output of profiles.yml; prefclean has the one warehouse, named `dev`."""
    if name is not None and name != TARGET_NAME:
        from .errors import ProjectError

        raise ProjectError(f"--target {name}: prefclean has one target, '{TARGET_NAME}' (the warehouse in "
                           "prefclean.yml; there is no profiles.yml or targets: section); another warehouse is another "
                           "project folder (--project-dir)")


class Log:
    """log(msg, info=False): printed once per model and message on stderr (a model renders several times)."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, owner: str, message: Any, info: bool = False) -> str:
        key = (owner, str(message))
        if key not in self.seen:
            self.seen.add(key)
            print(f"log ({owner}): {message}", file=sys.stderr)
        return ""


class Exceptions:
    """dbt's `exceptions` namespace, as far as projects use it."""

    def __init__(self, owner: Callable[[], str], log: Callable[[str], Any]):
        self._owner, self._log = owner, log

    def raise_compiler_error(self, message: Any) -> None:
        raise CompileError(f"{self._owner()}: {message}")

    def warn(self, message: Any) -> str:
        self._log(f"WARNING {message}")
        return ""

    def raise_not_implemented(self, message: Any) -> None:
        raise CompileError(f"{self._owner()}: not implemented: {message}")


class Adapter:
    """dbt's `adapter`: dispatch() finds duckdb__name, then default__name, among the project's macros."""

    type_name = "duckdb"

    def __init__(self, namespace: dict[str, Any], owner: Callable[[], str]):
        self._namespace, self._owner = namespace, owner

    def dispatch(self, macro_name: str, macro_namespace: str | None = None) -> Any:
        for candidate in (f"duckdb__{macro_name}", f"default__{macro_name}"):
            if isinstance(self._namespace.get(candidate), Macro):
                return self._namespace[candidate]
        where = f" (macro_namespace '{macro_namespace}': packages are not supported by prefclean)" if macro_namespace \
            and macro_namespace != "prefclean" else ""
        raise CompileError(f"{self._owner()}: adapter.dispatch('{macro_name}') found neither duckdb__{macro_name} nor "
                           f"default__{macro_name} among the macros{where}")

    def quote(self, identifier: str) -> str:
        return quote(identifier)

    def type(self) -> str:
        return self.type_name


class Column:
    def __init__(self, name: str, values: list[Any]):
        self.name, self._values = name, values

    def values(self) -> tuple[Any, ...]:
        return tuple(self._values)

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class Row(tuple):
    """A result row: by position (row[0]) or by column name (row['n']), as agate's rows are."""

    names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self.names.index(key))
            except ValueError:
                raise KeyError(key) from None
        return tuple.__getitem__(self, key)


class QueryResult:
    """What run_query() returns: `.columns[0].values()`, `.columns['name']`, `.rows`, iteration over rows."""

    def __init__(self, names: list[str], rows: list[tuple]):
        row_type = type("Row", (Row,), {"names": tuple(names)})
        self.column_names = tuple(names)
        self.rows = [row_type(r) for r in rows]
        self.columns = _Columns([Column(n, [r[i] for r in rows]) for i, n in enumerate(names)])

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def print_table(self, *args: Any, **kwargs: Any) -> str:
        return ""


class _Columns(list):
    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for column in self:
                if column.name == key:
                    return column
            raise KeyError(key)
        return list.__getitem__(self, key)


MODULES = {"datetime": datetime, "re": re, "itertools": itertools}


def _tojson(value: Any, default: Any = None) -> Any:
    try:
        return json.dumps(value, sort_keys=False, default=str)
    except (TypeError, ValueError):
        return default


def _fromjson(text: str, default: Any = None) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _toyaml(value: Any, default: Any = None) -> Any:
    try:
        return yaml.safe_dump(value, sort_keys=False)
    except yaml.YAMLError:
        return default


def _fromyaml(text: str, default: Any = None) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return default


# dbt's pure helper functions (no state, nothing that differs between runs).
FUNCTIONS = {"tojson": _tojson, "fromjson": _fromjson, "toyaml": _toyaml, "fromyaml": _fromyaml,
             "local_md5": lambda text: hashlib.md5(str(text).encode()).hexdigest(),
             "set": lambda value: set(value), "set_strict": lambda value: set(value),
             "zip": lambda *args: list(zip(*args)), "zip_strict": lambda *args: list(zip(*args))}


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
    env.context_class = MacroContext
    return env
