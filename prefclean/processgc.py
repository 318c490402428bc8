"""Python's garbage collector in a `prefclean` process: off while a build starts, and kept out of the exit.

Why: the start of a cold `prefclean build` makes a few hundred thousand objects that live as long as the
process (the modules of pydantic, DuckDB, pyarrow and numpy, the compiled project), and each collection of
the older generations walked all of them again: ~0.1 s of CPU before the first model ran. At exit, the
interpreter's shutdown collected the whole heap once more, ~0.15 s after the build's last line, for memory
the process was about to give back anyway. `gc.freeze()` moves the objects that exist at that moment out of
the collector's reach (they stay until the process ends), so later collections look only at what comes after.

Only a process that runs one command does this (the `prefclean` script, `python -m prefclean.cli`:
`run_as_process`); a notebook calling prefclean.build(), or tests invoking the CLI in-process, keep Python's
defaults, since there the heap belongs to someone else.
"""

from __future__ import annotations

import gc

_process = False  # the process runs one prefclean command and ends with it
_held = False


def run_as_process(command):
    """Run `command()` as the whole process's work: the start of a build may hold collections, and the heap is
    frozen before the interpreter exits (on every way out: a result, an error, Ctrl-C)."""
    global _process
    _process = True
    try:
        return command()
    finally:
        release()
        gc.freeze()
        _process = False  # (a caller that catches the exit and goes on has Python's defaults back for the next)


def hold() -> None:
    """No collection until `release()` (the start of a build, whose objects all stay alive); only in a process
    of its own."""
    global _held
    if _process and gc.isenabled():
        gc.disable()
        _held = True


def release() -> None:
    """What exists now is frozen (out of every later collection) and collection resumes: called when the first
    model starts, so what the models and the judge allocate is collected as usual."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()
