"""Ad-hoc SQL's Jinja, rendered where it cannot hurt: a sandbox, in a child process, with a deadline.

A query typed into `prefclean sql` or the dashboard's SQL box may come from a link or a pasted snippet, so it is
not trusted as the project's own models are. Its Jinja renders in jinja2's ImmutableSandboxedEnvironment with
nothing in scope but ref(), source() and var() (no Python object, no macro, no `_` attribute), in a separate
process whose memory is capped and which is killed at its deadline: a template that loops forever or builds a
huge string costs that process, never the dashboard's event loop.

This module imports nothing of prefclean's, so the child (`python -m prefclean.sqlrender`) starts in ~0.1 s.
"""

from __future__ import annotations

import difflib
import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

RENDER_SECONDS = 5.0
MAX_TEMPLATE_CHARS = 100_000
MAX_SQL_CHARS = 1_000_000
CHILD_MEMORY = 512 * 2**20  # address space a render may add on top of a started child


class RenderError(Exception):
    """The query's Jinja did not render; `refused` when the sandbox stopped it."""

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(message)
        self.refused = refused


@dataclass
class Names:
    """All a query's Jinja may see, as plain data: model and source relations, and the project's vars."""

    models: dict[str, str] = field(default_factory=dict)  # model name -> relation
    sources: dict[str, str] = field(default_factory=dict)  # source name -> relation
    vars: dict = field(default_factory=dict)


def has_jinja(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def _suggest(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else (f"; known: {', '.join(sorted(choices))}" if choices else "")


def render_sandboxed(text: str, names: Names) -> str:
    """Render in this process, sandboxed (no deadline: the child calls this; callers use a Renderer)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class Stop(Exception):
        pass

    def ref(name: str, *more: str) -> str:
        name = more[-1] if more else name  # dbt allows ref('package', 'model')
        if name not in names.models:
            raise Stop(f"ref('{name}') names no model" + _suggest(name, names.models))
        return names.models[name]

    def source(name: str, table: str | None = None) -> str:
        name = table or name  # source('group', 'table') reads as the table name
        if name not in names.sources:
            raise Stop(f"source('{name}') is not in prefclean.yml" + _suggest(name, names.sources))
        return names.sources[name]

    missing = object()

    def var(name: str, default=missing):
        if name in names.vars:
            return names.vars[name]
        if default is missing:
            raise Stop(f"var('{name}') is not set and has no default")
        return default

    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.globals.clear()  # not even range, cycler, joiner, namespace, dict or lipsum
    try:
        sql = env.from_string(text).render(ref=ref, source=source, var=var)
    except SecurityError as exc:
        raise RenderError(f"refused: the query's Jinja tried something the sandbox forbids ({exc})",
                          refused=True) from None
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"query:{exc.lineno}: Jinja syntax error: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"query: {exc}") from None
    except Stop as exc:
        raise RenderError(f"query: {exc}") from None
    except MemoryError:
        raise RenderError("refused: the query's Jinja needed more memory than a query may use", refused=True) from None
    except RecursionError:
        raise RenderError("refused: the query's Jinja recursed too deeply", refused=True) from None
    except Exception as exc:  # a filter given bad arguments, and the like: still the query's fault
        raise RenderError(f"query: {type(exc).__name__}: {exc}") from None
    if not sql.strip():
        raise RenderError("query: its Jinja renders to empty SQL")
    if len(sql) > MAX_SQL_CHARS:
        raise RenderError(f"refused: the query renders to more than {MAX_SQL_CHARS:,} characters", refused=True)
    return sql


# ---- the child process ----------------------------------------------------------------------------------

def _cap_memory() -> None:
    try:
        import resource

        with open("/proc/self/statm") as f:  # Linux; elsewhere RLIMIT_AS is not enforced anyway
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (used + CHILD_MEMORY, used + CHILD_MEMORY))
    except (ImportError, OSError, ValueError):
        pass


def _child() -> None:
    """Answer one JSON line per request line until stdin closes (the parent ended or let us go)."""
    import signal

    import jinja2.sandbox  # noqa: F401  (import before capping memory)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills us if it must

    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # nothing but answers reaches the parent's pipe
    _cap_memory()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = {"sql": render_sandboxed(request["text"], Names(**request["names"]))}
        except RenderError as exc:
            answer = {"error": str(exc), "refused": exc.refused}
        except MemoryError:
            answer = {"error": "refused: the query's Jinja needed more memory than a query may use", "refused": True}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


# ---- the parent's side ----------------------------------------------------------------------------------

class Renderer:
    """One child process, reused across renders, replaced when it misses a deadline or dies. Not thread-safe."""

    def __init__(self, timeout: float = RENDER_SECONDS):
        self.timeout = timeout
        self._proc: subprocess.Popen | None = None
        self._answers: queue.Queue = queue.Queue()

    def _start(self) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "prefclean.sqlrender"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, encoding="utf-8",
                                cwd=Path(__file__).resolve().parent.parent)  # not the project's folder
        answers: queue.Queue = queue.Queue()

        def read() -> None:  # a thread, so waiting for an answer can time out on every platform
            for line in proc.stdout:
                answers.put(line)
            answers.put(None)

        threading.Thread(target=read, daemon=True, name="sqlrender-reader").start()
        self._proc, self._answers = proc, answers
        return proc

    def render(self, text: str, names: Names) -> str:
        if not has_jinja(text):
            return text
        if len(text) > MAX_TEMPLATE_CHARS:
            raise RenderError(f"refused: a query with Jinja may be at most {MAX_TEMPLATE_CHARS:,} characters",
                              refused=True)
        proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
        request = {"text": text, "names": {"models": names.models, "sources": names.sources, "vars": names.vars}}
        try:
            proc.stdin.write(json.dumps(request, default=str) + "\n")
            proc.stdin.flush()
            line = self._answers.get(timeout=self.timeout)
        except queue.Empty:
            self.close()
            raise RenderError(f"refused: the query's Jinja took longer than {self.timeout:g}s to render",
                              refused=True) from None
        except OSError:
            line = None
        if line is None:  # the child died: killed for memory, most likely
            self.close()
            raise RenderError("refused: rendering the query's Jinja stopped its sandbox process "
                              "(it needed more memory than a query may use)", refused=True)
        answer = json.loads(line)
        if "error" in answer:
            raise RenderError(answer["error"], refused=answer.get("refused", False))
        return answer["sql"]

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RenderPool:
    """A few Renderers shared by threads (the dashboard's SQL-box slots): each render takes one, then gives it back."""

    def __init__(self, size: int, timeout: float = RENDER_SECONDS):
        self._idle: queue.Queue = queue.Queue()
        self._all = [Renderer(timeout) for _ in range(size)]
        for r in self._all:
            self._idle.put(r)

    def render(self, text: str, names: Names) -> str:
        if not has_jinja(text):
            return text
        renderer = self._idle.get()
        try:
            return renderer.render(text, names)
        finally:
            self._idle.put(renderer)

    def close(self) -> None:
        for r in self._all:
            r.close()


if __name__ == "__main__":
    _child()
