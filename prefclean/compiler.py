"""Render Jinja SQL models: ref(), source(), var(), config(), this, is_incremental() and macros.

The vocabulary and meaning are dbt's. Rendering records what a model depends on, so the graph is built
from the templates themselves.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from . import contracts, modelconfig, plugins, relnames
from .errors import CompileError
from .project import Project
from .context import (FUNCTIONS, MACRO_CALLS, MODULES, Adapter, Exceptions, Log, Relation, jinja_return,
                      make_environment, target)
from .properties import load_properties
from .rendering import MATERIALIZATIONS, ON_SCHEMA_CHANGE, Config, RenderContext, check_on_schema_change  # noqa: F401 (ON_SCHEMA_CHANGE: re-exported)
from .dbtforms import refuse_dbt_only_files, undefined_hint
from .seeds import discover_seeds, seed_sql
from .jinjacache import TemplateCache, cache_folder
from .state import macro_checksums
from .warehouse import MODELS_SCHEMA, relation

BUILTIN_MACROS_DIR = Path(__file__).parent / "macros"


@dataclass
class Model:
    name: str
    path: Path  # relative to the project root
    template: str
    materialized: str = "view"
    unique_key: str | list[str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    refs: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    compiled_sql: str = ""
    runs_queries: bool = False  # it calls run_query(): rendered again just before it builds
    resource_type: str = "model"  # model | seed | test (a singular data test)
    pre_hooks: list[str] = field(default_factory=list)  # rendered SQL, run in the model's transaction
    description: str = ""  # from its property file, with its columns' (for the manifest)
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    post_hooks: list[str] = field(default_factory=list)
    schema: str = MODELS_SCHEMA  # where it is built: its `schema` / `alias` config, resolved by relnames.py
    alias: str = ""  # its relation's name; "" until resolved: the model's name
    macros: set[str] = field(default_factory=set)  # the macros its rendering called (state:modified.macros)
    content_digest: str = ""  # a seed's file contents, part of its checksum (a changed CSV is state:modified)

    @property
    def identifier(self) -> str:
        return self.alias or self.name

    @property
    def relation(self) -> str:
        return relation(self.schema, self.identifier)

    @property
    def checksum(self) -> str:
        return hashlib.sha256((self.compiled_sql + self.content_digest).encode()).hexdigest()

    @property
    def depends_on(self) -> set[str]:
        return self.refs

    def listing(self) -> dict[str, Any]:
        """What `prefclean ls --output json` prints for the model (dbt's keys where they mean the same)."""
        tags = self.config.get("tags") or []
        return {"name": self.name, "resource_type": self.resource_type, "original_file_path": str(self.path),
                "materialized": self.materialized, "schema": self.schema, "alias": self.identifier,
                "relation_name": self.relation, "tags": [tags] if isinstance(tags, str) else list(tags),
                "depends_on": {"models": sorted(self.refs), "sources": sorted(self.sources),
                               "macros": sorted(self.macros)},
                "description": self.description,
                "columns": {n: c.get("description", "") for n, c in self.columns.items()}}


_TEST_PREFIX = "test_"
_TEST_OPEN = re.compile(r"(\{%-?\s*)test(\s+)([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_TEST_CLOSE = re.compile(r"(\{%-?\s*)endtest(\s*-?%\})")


def _test_blocks_as_macros(text: str) -> str:
    """dbt's `{% test name(model, column_name) %}...{% endtest %}` is a macro named test_name."""
    text = _TEST_OPEN.sub(lambda m: f"{m.group(1)}macro{m.group(2)}{_TEST_PREFIX}{m.group(3)}(", text)
    return _TEST_CLOSE.sub(lambda m: f"{m.group(1)}endmacro{m.group(2)}", text)


def _threads(connection) -> int | None:
    """DuckDB's `threads` on the build's connection (what --threads sets), for target.threads."""
    return None if connection is None else int(connection.execute("select current_setting('threads')").fetchall()[0][0])


def _template_error(path: Path, exc: jinja2.TemplateSyntaxError) -> CompileError:
    return CompileError(f"{path}:{exc.lineno}: Jinja syntax error: {exc.message}")


class Compiler:
    """Loads a project's models and macros and renders them."""

    def __init__(self, project: Project, connection=None):
        self.project = project
        self.env = make_environment()
        self.templates = TemplateCache(self.env, cache_folder())  # compiled once, kept between builds
        # Python functions offered to every template: judge(), format_rows() and friends, and installed
        # packages' (plugins). One with `fn.with_project = True` gets the project as its first argument.
        self.namespace: dict[str, Any] = {name: functools.partial(fn, project) if getattr(fn, "with_project", False)
                                          else fn for name, fn in plugins.load_all(plugins.TEMPLATE_GLOBALS).items()}
        self.namespace.update({"return": jinja_return, "target": target(project, _threads(connection)),
                               "modules": MODULES, "project_name": project.name, **FUNCTIONS})
        self.executing = False  # True while models build: run_query() runs and `execute` is true, as in dbt
        self.logger = Log()
        self.namespace["project_vars"] = project.vars
        self.connection = connection
        self.namespace["relation_exists"] = self.relation_exists
        refuse_dbt_only_files(project.root, project.models_dir)
        modelconfig.check_folder_tree(project.models_config, "prefclean.yml: models", project.models_dir, project.name)
        modelconfig.check_folder_tree(project.seeds_config, "prefclean.yml: seeds", project.root / "seeds", project.name,
                                      "seed")
        self.models: dict[str, Model] = self._discover_models()
        self.model_names = list(self.models)
        self.disabled: dict[str, Model] = {}  # enabled: false; set by parse_all
        self.ephemeral: dict[str, str | None] = {}
        # A unit test's stand-ins, while it renders its model (see mocked()).
        self.mocks: dict[tuple[str, ...], str] = {}
        self.var_overrides: dict[str, Any] = {}
        self.macro_overrides: dict[str, Any] = {}
        self.properties = load_properties(project.root, project.models_dir,
                                          [n for n, m in self.models.items() if m.resource_type == "model"],
                                          [n for n, m in self.models.items() if m.resource_type == "seed"])
        self._load_macros()

    def relation_exists(self, schema: str, name: str) -> bool:
        """For models that read optional tables (e.g. human reviews pulled from Argilla)."""
        if self.connection is None:
            return False
        from .warehouse import relation_kind

        return relation_kind(self.connection, schema, name) is not None

    def _discover_models(self) -> dict[str, Model]:
        models: dict[str, Model] = {}
        for path in sorted(self.project.models_dir.rglob("*.sql")) if self.project.models_dir.exists() else []:
            rel = path.relative_to(self.project.root)
            name = path.stem
            if name in models:
                raise CompileError(f"two models are named '{name}': {models[name].path} and {rel}")
            models[name] = Model(name=name, path=rel, template=path.read_text(encoding="utf-8"))
        for name, path in discover_seeds(self.project).items():
            if name in models:
                raise CompileError(f"a seed and a model are both named '{name}': {path} and {models[name].path}")
            models[name] = Model(name=name, path=path, template="", materialized="seed", resource_type="seed")
        return models

    def _load_macros(self) -> None:
        root = self.project.root
        files = (sorted(BUILTIN_MACROS_DIR.glob("*.sql")) + sorted(self.project.macros_dir.glob("**/*.sql"))
                 + sorted((root / "tests" / "generic").glob("**/*.sql")))
        self.generic_tests: dict[str, Any] = {}
        self.macro_checksums: dict[str, str] = {}  # name -> checksum of its own text (state:modified.macros)
        for path in files:
            shown = path.relative_to(root) if path.is_relative_to(root) else Path("prefclean/macros") / path.name
            text = _test_blocks_as_macros(path.read_text(encoding="utf-8"))
            self.macro_checksums.update(macro_checksums(text))
            try:
                template = self.templates.from_string(text)
                module = template.make_module(self.namespace, shared=True)
            except jinja2.TemplateSyntaxError as exc:
                raise _template_error(shown, exc) from None
            except jinja2.TemplateError as exc:
                raise CompileError(f"{shown}: {exc}") from None
            for attr in dir(module):
                value = getattr(module, attr)
                if isinstance(value, jinja2.runtime.Macro):
                    value._prefclean_project = path.parent != BUILTIN_MACROS_DIR  # (relnames: an override)
                    self.namespace[attr] = value
                    if attr.startswith(_TEST_PREFIX):
                        self.generic_tests[attr[len(_TEST_PREFIX):]] = value

    def render(self, model: Model, *, incremental: bool = False, this: str | None = None) -> str:
        """Render one model; sets model.compiled_sql, refs, sources, macros, config and hooks."""
        model.macros = set()
        MACRO_CALLS.append(model.macros)
        try:
            return self._render_model(model, incremental, this)
        finally:
            MACRO_CALLS.pop()

    def _render_model(self, model: Model, incremental: bool, this: str | None) -> str:
        model.refs, model.sources, model.pre_hooks, model.post_hooks = set(), set(), [], []
        owner = f"{model.resource_type} '{model.name}' ({model.path})"
        props = self.properties.models.get(model.name) if model.resource_type != "test" else None
        model.config = modelconfig.merge(self._folder_config(model), props.config if props else {})
        if props:
            model.description, model.columns = props.description, props.columns
        model.materialized = model.config.get("materialized", "seed" if model.resource_type == "seed" else "view")
        model.unique_key = model.config.get("unique_key")
        if model.resource_type == "seed":
            modelconfig.check(owner, model.config, "seed")
            model.schema, model.alias = relnames.resolve(self.namespace, model, owner)
            model.compiled_sql = seed_sql(self.project, model)
            model.content_digest = hashlib.sha256((self.project.root / model.path).read_bytes()).hexdigest()
            return model.compiled_sql
        ctx = RenderContext(self, model, incremental)
        sql = self._render_text(model, model.template, ctx=ctx, this=this)
        if model.resource_type == "model":
            self._check_config(model, ctx, owner, props.config if props else {})
            model.schema, model.alias = relnames.resolve(self.namespace, model, owner)
            contracts.check_declared(model, owner)
            model.pre_hooks = [self._render_text(model, h, ctx=ctx, this=this).strip()
                               for h in modelconfig.as_list(model.config.get("pre_hook"))]
            model.post_hooks = [self._render_text(model, h, ctx=ctx, this=this).strip()
                                for h in modelconfig.as_list(model.config.get("post_hook"))]
        model.compiled_sql = sql.strip().rstrip(";").strip()
        if not model.compiled_sql:
            raise CompileError(f"model '{model.name}' ({model.path}) renders to empty SQL")
        return model.compiled_sql

    def _folder_config(self, model: Model) -> dict[str, Any]:
        """prefclean.yml's `models:` / `seeds:` config for the model's folder (dbt_project.yml's precedence: the
        property file and the model's config() override it)."""
        kind = {"model": ("models", self.project.models_config), "seed": ("seeds", self.project.seeds_config)}
        if model.resource_type not in kind or not model.path.parts or model.path.parts[0] != kind[model.resource_type][0]:
            return {}
        folder, tree = kind[model.resource_type]
        return modelconfig.folder_config(tree, self.project.root / folder, model.path.relative_to(folder),
                                         self.project.name)

    def render_hook(self, text: str, name: str) -> str:
        """An on-run-start / on-run-end statement from prefclean.yml, rendered (it may use var(), run_query()...)."""
        owner = Model(name=name, path=Path("prefclean.yml"), template=text, resource_type="hook")
        return self._render_text(owner, text).strip()

    def _check_config(self, model: Model, ctx: RenderContext, owner: str, props: dict[str, Any]) -> None:
        if model.materialized not in MATERIALIZATIONS:  # (config() checks its own; this is the YAML's)
            raise CompileError(f"{owner}: materialized='{model.materialized}' is not one of {', '.join(MATERIALIZATIONS)}")
        modelconfig.check(owner, model.config)
        check_on_schema_change(owner, model.config.get("on_schema_change"))
        if "on_schema_change" in ctx.set_keys and model.materialized != "incremental":
            raise CompileError(f"model '{model.name}' ({model.path}): on_schema_change applies to incremental models "
                               f"only (this one is materialized='{model.materialized}')")
        if model.materialized == "ephemeral" and (model.config.get("pre_hook") or model.config.get("post_hook")):
            own = set(ctx.set_keys) | set(modelconfig.normalize(props))
            if own & set(modelconfig.HOOKS):
                raise CompileError(f"{owner}: an ephemeral model has no relation to run hooks on; drop pre_hook/"
                                   "post_hook or materialize it")
            for hook in modelconfig.HOOKS:  # a folder's hooks are for the models it builds, as in dbt
                model.config.pop(hook, None)

    def render_fragment(self, text: str, owner: Model, extra: dict[str, Any] | None = None) -> str:
        """Render a piece of Jinja (a test's argument, a call of a {% test %} block) as part of owner: what it
        ref()s joins owner.refs."""
        return self._render_text(owner, text, extra=extra).strip()

    def call_test_macro(self, macro: Any, kwargs: dict[str, Any], owner: Model) -> str:
        sql = self.render_fragment("{{ __prefclean_test(**__prefclean_test_args) }}", owner,
                                   {"__prefclean_test": macro, "__prefclean_test_args": kwargs})
        sql = sql.rstrip(";").strip()
        if not sql:
            raise CompileError(f"{{% test {macro.name[len('test_'):]} %}} renders to empty SQL")
        return sql

    def _render_text(self, model: Model, text: str, *, ctx: RenderContext | None = None, this: str | None = None,
                     extra: dict[str, Any] | None = None) -> str:
        ctx = ctx or RenderContext(self, model, False)
        database = self.project.warehouse.stem
        self.namespace.update(ref=ctx.ref, source=ctx.source, var=ctx.var, config=Config(ctx),
                              is_incremental=ctx.is_incremental, model_name=model.name,
                              this=Relation(model.schema, model.identifier, database,
                                            sql=this if ("this",) not in self.mocks else f"({self.mocks[('this',)]}\n)"),
                              env_var=ctx.env_var, log=ctx.log, run_query=ctx.run_query, execute=self.executing,
                              exceptions=Exceptions(lambda: ctx.owner, ctx.log),
                              adapter=Adapter(self.namespace, lambda: ctx.owner), **(extra or {}))
        try:
            try:
                template = self.templates.from_string(text)
            except jinja2.TemplateSyntaxError as exc:
                raise _template_error(model.path, exc) from None
            try:
                return template.render(self.namespace)
            except CompileError:
                raise
            except jinja2.UndefinedError as exc:
                name = re.match(r"'(\w+)' is undefined", exc.message or "")
                raise CompileError(f"model '{model.name}' ({model.path}): {exc.message}"
                                   + undefined_hint(name and name.group(1))) from None
            except jinja2.TemplateError as exc:
                raise CompileError(f"model '{model.name}' ({model.path}): {exc}") from None
            except Exception as exc:  # a macro or template global raised: still the user's template at fault
                raise CompileError(f"model '{model.name}' ({model.path}): {type(exc).__name__}: {exc}") from None
        finally:
            for key in extra or {}:
                self.namespace.pop(key, None)

    @contextmanager
    def mocked(self, mocks: dict[tuple[str, ...], str], vars: dict[str, Any], macros: dict[str, Any],
               env_vars: dict[str, Any]):
        """Render with a unit test's given rows for ref()/source()/this, and its overridden vars, macros
        (each returns the value given) and environment variables."""
        missing = object()
        saved = {k: self.namespace.get(k, missing) for k in macros if k != "is_incremental"}
        saved_env = {k: os.environ.get(k) for k in env_vars}
        self.mocks, self.var_overrides, self.macro_overrides = mocks, vars, macros
        for key in saved:
            self.namespace[key] = (lambda value: lambda *a, **k: value)(macros[key])
        os.environ.update({k: str(v) for k, v in env_vars.items()})
        try:
            yield
        finally:
            self.mocks, self.var_overrides, self.macro_overrides = {}, {}, {}
            for key, value in saved.items():
                if value is missing:
                    self.namespace.pop(key, None)
                else:
                    self.namespace[key] = value
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def parse_all(self) -> dict[str, Model]:
        """Render every model once (not incremental) to learn its config and dependencies."""
        for model in self.models.values():
            self.render(model)
        # enabled: false takes a model out of the project; rendering again finds refs to it.
        self.disabled = {n: m for n, m in self.models.items() if m.config.get("enabled", True) is False}
        if self.disabled:
            self.models = {n: m for n, m in self.models.items() if n not in self.disabled}
            self.model_names = list(self.models)
            for model in self.models.values():
                self.render(model)
        # A `schema` or `alias` is known once its model has rendered: render again for ref() and `this` to see it.
        if any(m.schema != MODELS_SCHEMA or m.identifier != m.name for m in self.models.values()):
            for model in self.models.values():
                self.render(model)
        relnames.check_unique(self.models)
        # Ephemeral models are inlined: render again until refs to them embed their SQL (an ephemeral model
        # that refs another ephemeral one needs one more round per level).
        for _ in range(len(self.models) + 1):
            inlined = {m.name: m.compiled_sql if m.materialized == "ephemeral" else None for m in self.models.values()}
            changed, self.ephemeral = inlined != self.ephemeral, inlined
            if not changed or all(v is None for v in inlined.values()):
                break
            for model in self.models.values():
                self.render(model)
        return self.models

    def write_compiled(self, target_dir: Path) -> None:
        out = target_dir / "compiled"
        for model in self.models.values():
            path = out / model.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(model.compiled_sql + "\n", encoding="utf-8")

    def compiled_path(self, model: Model) -> Path:
        return self.project.target_dir / "compiled" / model.path
