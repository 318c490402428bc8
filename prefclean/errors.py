"""Typed errors. The CLI turns a PrefcleanError into one line and an exit code; anything else is a bug."""

from __future__ import annotations

# Exit codes: what a script calling prefclean can rely on.
EXIT_OK = 0
EXIT_FAILED = 1  # the command ran, but a model, test or export failed
EXIT_USER_ERROR = 2  # bad input: project file, model, source, arguments
EXIT_INTERNAL = 3  # a bug in prefclean (traceback with --debug)


class PrefcleanError(Exception):
    """A user mistake or an environment problem, explained in one line."""

    exit_code = EXIT_USER_ERROR


class ProjectError(PrefcleanError):
    """prefclean.yml is missing or malformed (the message names the key path)."""


class SourceError(PrefcleanError):
    """A source cannot be staged: missing file, unknown column, bad options."""


class CompileError(PrefcleanError):
    """A model cannot be rendered: Jinja syntax, unknown ref/source/var."""


class GraphError(PrefcleanError):
    """The model graph is invalid (a cycle) or a selector matches nothing."""


class ModelError(PrefcleanError):
    """A model's SQL failed in DuckDB."""

    exit_code = EXIT_FAILED


class JudgeError(PrefcleanError):
    """A judge is misconfigured or unusable (unknown engine, missing model file...)."""


class ExportError(PrefcleanError):
    """An export could not be written; nothing was half-written."""

    exit_code = EXIT_FAILED
