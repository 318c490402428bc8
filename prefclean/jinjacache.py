"""Jinja templates compiled once per text, kept between builds (the Python code Jinja generates, marshalled).

Why: every build compiled every macro file and model afresh, the macros' ~30 macros included: ~0.1 s of CPU
(more on a loaded machine) before the first model could run, the largest part of compiling a project. Jinja's own
bytecode cache works only for templates loaded through a loader; ours are rendered from strings, so the code is
kept here under a hash of everything it depends on: the text, the environment's settings, Jinja's and Python's
versions. A file that cannot be read or written is compiled as before (the cache only saves time), and a
template with a syntax error is never stored, so its error is raised by every build.

The folder is per user, not per project ($PREFCLEAN_CACHE_DIR, else $XDG_CACHE_HOME/prefclean, else
~/.cache/prefclean; then jinja/): prefclean's own macros, most of the text, are the same in every project, so a
new project's first build finds them compiled. Files not read for 30 days are removed now and then.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import tempfile
import time
from pathlib import Path

import jinja2

_FORMAT = "1"  # bump when what is stored changes
KEEP_DAYS = 30


def cache_folder() -> Path:
    """Where compiled templates are kept (see the module's docstring)."""
    base = os.environ.get("PREFCLEAN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "prefclean")
    return Path(base) / "jinja"


def _signature(env: jinja2.Environment) -> str:
    """What besides the text changes the code Jinja generates for it."""
    return "|".join([_FORMAT, jinja2.__version__, sys.version, type(env).__name__, ",".join(sorted(env.extensions)),
                     env.block_start_string, env.block_end_string, env.variable_start_string,
                     env.variable_end_string, env.comment_start_string, env.comment_end_string,
                     str(env.line_statement_prefix), str(env.line_comment_prefix), str(env.trim_blocks),
                     str(env.lstrip_blocks), str(env.keep_trailing_newline), str(env.newline_sequence),
                     str(env.optimized), str(env.autoescape), env.undefined.__name__])


class TemplateCache:
    """`from_string` with the compiled code kept in memory and in `folder` (None: memory only)."""

    def __init__(self, env: jinja2.Environment, folder: Path | None):
        self.env, self.folder = env, folder
        self._signature = _signature(env)
        self._code: dict[str, object] = {}

    def from_string(self, text: str) -> jinja2.Template:
        key = hashlib.sha256(f"{self._signature}\n{text}".encode()).hexdigest()
        code = self._code.get(key)
        if code is None:
            code = self._read(key)
            if code is None:
                code = self.env.compile(text)  # a TemplateSyntaxError goes to the caller, nothing stored
                self._write(key, code)
            self._code[key] = code
        return self.env.template_class.from_code(self.env, code, self.env.make_globals(None), None)

    def _path(self, key: str) -> Path | None:
        return self.folder / f"{key}.code" if self.folder is not None else None

    def _read(self, key: str):
        path = self._path(key)
        if path is None:
            return None
        try:
            code = marshal.loads(path.read_bytes())
        except (OSError, ValueError, EOFError, TypeError):  # absent, or damaged: compiled again
            return None
        try:
            if time.time() - path.stat().st_mtime > 86400:  # still in use: kept by _prune
                os.utime(path)
        except OSError:
            pass
        return code

    def _prune(self) -> None:
        limit = time.time() - KEEP_DAYS * 86400
        for old in self.folder.glob("*.code"):
            try:
                if old.stat().st_mtime < limit:
                    old.unlink()
            except OSError:
                pass

    def _write(self, key: str, code) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if key.startswith("00"):  # about one write in 256: forget what no build has read for a while
                self._prune()
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:12]}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(marshal.dumps(code))
            os.replace(tmp, path)  # whole or not at all: a reader never sees half a file
        except OSError:
            try:
                os.unlink(tmp)
            except (OSError, UnboundLocalError):
                pass
