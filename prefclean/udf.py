"""Python functions as DuckDB UDFs: one decorator for built-ins (the judge), plugins and project `udfs/*.py`.

    from prefclean import udf

    @udf(params=["VARCHAR"], returns="INTEGER")
    def word_count(texts):            # vectorized: receives pyarrow arrays, returns one
        ...

A UDF that needs the running build (judges, cache, progress) declares `with_context=True` and receives a
RunContext as its first argument. The decorator only describes the function (`fn.udf_spec`); a build finds
the built-ins and installed packages' UDFs through plugins, and a project's by importing its udfs/ files.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import duckdb

from . import plugins
from .errors import PrefcleanError
from .events import Reporter, quiet


@dataclass(frozen=True)
class UdfSpec:
    name: str
    fn: Callable[..., Any]
    params: tuple[str, ...]
    returns: str
    vectorized: bool = True
    with_context: bool = False
    side_effects: bool = False
    origin: str = "prefclean"
    warm_up: Callable[["RunContext"], None] | None = None
    called_via: tuple[str, ...] = ()  # Jinja helpers that write calls to it (judge() for the judge UDF)


@dataclass(frozen=True)
class RunOptions:
    """The run's choices a UDF may read: the build's flags (`prefclean build --judge ...`)."""

    judge_override: str | None = None  # --judge: this named judge for every judge() call
    refresh_judgments: bool = False  # ignore the judgment cache (results are still stored)
    batch_wait: bool = True  # False (--no-wait): batch judges submit and return; the next build collects
    batch_export: Path | None = None  # `prefclean batch export`: batch judges write their requests here instead
    executor: str | None = None  # 'local' or 'ray'; None: prefclean.yml's `executor`
    ray_address: str | None = None  # with executor ray: the cluster
    max_cost_usd: float | None = None  # --max-cost: what every judge together may spend in this build
    planner: Any = None  # `prefclean plan`: the judge UDF counts what it would send instead (judge/plan.py)


@dataclass
class RunContext:
    """What a context-aware UDF can see of the build that calls it."""

    project: Any
    options: RunOptions = field(default_factory=RunOptions)
    report: Reporter = quiet  # events (judge progress) for whoever watches the build
    model: str | None = None  # the model being built
    state: dict[str, Any] = field(default_factory=dict)  # per-run objects a UDF caches (engines, caches)
    notes: list[str] = field(default_factory=list)  # warnings a UDF wants shown under the model's line
    closers: list[Callable[[], None]] = field(default_factory=list)
    # Closers that write a file's last pages (the judgment cache's checkpoint): run in a thread of their own when the
    # build closes, so they overlap the summary, the exports and the warehouse's checkpoint; `close()` waits for them.
    file_closers: list[Callable[[], None]] = field(default_factory=list)
    summaries: list[Callable[[], dict]] = field(default_factory=list)
    # Called when a model ends: what each UDF did during it (the judge's JudgeRun per judge).
    model_end_hooks: list[Callable[[], list]] = field(default_factory=list)
    # Called when a model's query is done, before its notes: True asks for the model to be built once more (a
    # batch judge collected the answers of rows it left pending: see judge/batching.py).
    model_finishers: list[Callable[[], bool]] = field(default_factory=list)
    # Held while a shared object is made (which may register its closer) and while closing: a warm-up thread
    # still opening the judgment cache when a short build ends must not leave it open behind it.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    closed: bool = False
    _closing: list[tuple[threading.Thread, list]] = field(default_factory=list, repr=False)
    fatal_error: str | None = None  # why no row of the model can be computed (a judge that cannot start)
    _noted: set[str] = field(default_factory=set, repr=False)

    def fail(self, message: str) -> None:
        """Record why the running model cannot work at all, then raise: the runner fails the model with
        these words instead of DuckDB's wrapping of the exception."""
        self.fatal_error = message

    def take_fatal_error(self) -> str | None:
        message, self.fatal_error = self.fatal_error, None
        return message

    def note_once(self, text: str) -> None:
        """A warning under the model's line, shown once per build however many batches meet it."""
        with self.lock:
            if text in self._noted:
                return
            self._noted.add(text)
            self.notes.append(text)

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """The build's object under `key` in `state`, made once by whichever thread asks first (a UDF's
        warm-up or its first call). `make` runs under the build's lock, so it may check `closed`."""
        with self.lock:
            if key not in self.state:
                self.state[key] = make()
            return self.state[key]

    def finish_model(self) -> bool:
        """Run the model finishers; whether any asks for the model to be built again."""
        return any([finish() for finish in list(self.model_finishers)])

    def take_notes(self) -> tuple[list[str], list]:
        """What happened during the model that just finished: the warnings, and what the hooks report."""
        with self.lock:
            notes, self.notes = self.notes, []
        done = [item for hook in self.model_end_hooks for item in hook()]
        return notes + [n for n in done if isinstance(n, str)], [n for n in done if not isinstance(n, str)]

    def close(self, wait: bool = True) -> None:
        """Run the closers (last added first), then the file closers, each in its own (non-daemon) thread; with
        `wait`, return once those are done too, raising what one of them raised. Closing again only waits."""
        with self.lock:
            self.closed = True
            closers, self.closers = self.closers, []
            file_closers, self.file_closers = self.file_closers, []
        try:
            while closers:
                closers.pop()()
        finally:
            for fn in reversed(file_closers):
                failed: list = []
                thread = threading.Thread(target=_catching, args=(fn, failed), name="prefclean-close", daemon=False)
                thread.start()
                self._closing.append((thread, failed))
        if wait:
            closing, self._closing = self._closing, []
            for thread, _ in closing:
                thread.join()
            for _, failed in closing:
                if failed:
                    raise failed[0]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for fn in self.summaries:
            out.update(fn())
        return out


def udf(name: str | None = None, *, params: list[str], returns: str, vectorized: bool = True,
        with_context: bool = False, side_effects: bool = False, warm_up: Callable[[RunContext], None] | None = None,
        called_via: tuple[str, ...] = ()):
    """Declare a DuckDB UDF. Vectorized UDFs get pyarrow arrays (2,048 rows a call) and return one.

    warm_up(ctx), if given, runs in a background thread when a build starts whose models or macros
    call the UDF (by name, or through one of the `called_via` Jinja helpers): slow imports and set-up then
    overlap with compiling and running the models before, instead of delaying the first call. `ctx` is the
    build's RunContext (`ctx.project`); what the warm-up puts in `ctx.state` the UDF's calls find there."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        spec = UdfSpec(name or fn.__name__, fn, tuple(params), returns, vectorized, with_context, side_effects,
                       origin=getattr(fn, "__module__", "?"), warm_up=warm_up, called_via=tuple(called_via))
        fn.udf_spec = spec  # type: ignore[attr-defined]
        return fn

    return decorator


def load_project_udfs(udfs_dir: Path) -> list[UdfSpec]:
    """Import every udfs/*.py file of a project and return the UDFs it declares (defines, not imports)."""
    specs: list[UdfSpec] = []
    if not udfs_dir.exists():
        return specs
    for path in sorted(udfs_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module_name = f"prefclean_project_udfs.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except Exception as exc:
            raise PrefcleanError(f"udfs/{path.name}: cannot import: {type(exc).__name__}: {exc}") from None
        specs.extend(value.udf_spec for value in vars(module).values()
                     if isinstance(getattr(value, "udf_spec", None), UdfSpec) and value.udf_spec.origin == module_name)
    return specs


def register_udfs(con: duckdb.DuckDBPyConnection, specs: list[UdfSpec], ctx: RunContext) -> None:
    import functools

    for spec in specs:
        fn = functools.partial(spec.fn, ctx) if spec.with_context else spec.fn
        try:
            con.remove_function(spec.name)
        except duckdb.Error:
            pass
        try:
            con.create_function(spec.name, fn, list(spec.params), spec.returns,
                                type="arrow" if spec.vectorized else "native",
                                null_handling="special", side_effects=spec.side_effects)
        except (duckdb.Error, TypeError, ValueError) as exc:
            raise PrefcleanError(f"UDF '{spec.name}' ({spec.origin}): cannot register: {exc}") from None


def start_warm_ups(specs: list[UdfSpec], ctx: RunContext) -> None:
    """Start the warm-up of each UDF the project's models or macros call, each in a daemon thread. A
    warm-up that fails is ignored: the UDF's own first call meets the same problem and reports it where it
    belongs. Read from the files, before compiling, so the warm-up overlaps with the compile too."""
    import re

    project = ctx.project
    wanted = [s for s in specs if s.warm_up is not None]
    if not wanted:
        return
    text = "\n".join(path.read_text(encoding="utf-8", errors="replace")
                     for folder in (project.models_dir, project.macros_dir) if folder.is_dir()
                     for path in sorted(folder.rglob("*.sql")))
    for spec in wanted:
        names = "|".join(re.escape(n) for n in (spec.name, *spec.called_via))
        if re.search(rf"\b({names})\s*\(", text, re.IGNORECASE):
            threading.Thread(target=_quietly, args=(spec.warm_up, ctx), name=f"warm-up {spec.name}",
                             daemon=True).start()


def _catching(fn: Callable[[], None], failed: list) -> None:
    try:
        fn()
    except BaseException as exc:  # raised again by RunContext.close(wait=True)
        failed.append(exc)


def _quietly(fn: Callable[[RunContext], None], ctx: RunContext) -> None:
    try:
        fn(ctx)
    except BaseException:
        pass


def plugin_udfs() -> dict[str, UdfSpec]:
    """prefclean's own UDFs (the judge) and installed packages', by name (see plugins)."""
    specs = {}
    for name, fn in plugins.load_all(plugins.UDFS).items():
        spec = getattr(fn, "udf_spec", None)
        if not isinstance(spec, UdfSpec) or spec.name != name:
            raise PrefcleanError(f"the UDF registered as '{name}' ({getattr(fn, '__module__', '?')}) is not a "
                                 f"function decorated with @udf named '{name}'")
        specs[name] = spec
    return specs


def all_udfs(project) -> list[UdfSpec]:
    """Built-ins and plugins first, then the project's (a project UDF may replace one of the same name)."""
    merged = plugin_udfs()
    for spec in load_project_udfs(project.udfs_dir):
        merged[spec.name] = spec
    return list(merged.values())
