"""Read-only access to the warehouse for `prefclean sql` and the dashboard, and who holds its lock.

The connection is opened read-only, with external access disabled (no ATTACH, no reading or writing
files, no INSTALL/LOAD of extensions), no scans of the caller's Python variables, and the configuration
locked so a query cannot turn any of it back on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .errors import PrefcleanError

SAFE_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "python_enable_replacements": False,  # `select * from some_python_variable` finds nothing
    "lock_configuration": True,
}


class QueryRefused(PrefcleanError):
    """A query tried to write, attach, install extensions or read files."""


def open_readonly(warehouse: Path, *, safe: bool = True, limits: dict | None = None) -> duckdb.DuckDBPyConnection:
    """`limits`: more settings, locked with the rest (a process must open every connection to one file alike)."""
    if not warehouse.exists():
        raise PrefcleanError(f"no warehouse at {warehouse}: run `prefclean build` first")
    try:
        return duckdb.connect(str(warehouse), read_only=True, config={**(SAFE_CONFIG if safe else {}), **(limits or {})})
    except duckdb.IOException as exc:
        holder = lock_holder(str(exc))
        why = f"{holder} has it open for writing" if holder else " ".join(str(exc).split())
        raise PrefcleanError(f"cannot open {warehouse} read-only: {why}") from None


_PID = re.compile(r"\(PID (\d+)\)")
_WHO = {"dashboard": "the dashboard (`prefclean dashboard`, PID {pid})", "sql": "a `prefclean sql` session (PID {pid})",
        "build": "a `prefclean build` (PID {pid})"}
_WHAT_TO_DO = {"dashboard": "is running a query on it; try again when that query ends (it stops at the dashboard's "
                            "time limit, {timeout})",
               "sql": "has it open; leave that prompt (.quit) or let its query end, and try again",
               "build": "is writing it; wait for that build to finish"}


@dataclass
class _Holder:
    pid: str
    args: list[str]  # its command line, where /proc tells (Linux); else empty

    @property
    def command(self) -> str | None:
        """The prefclean subcommand it runs (`dashboard`, `sql`, ...), if it is prefclean."""
        for i, arg in enumerate(self.args[:-1]):
            if Path(arg).name == "prefclean" or arg == "prefclean.cli":
                return self.args[i + 1]
        return None

    def option(self, name: str) -> str | None:
        for i, arg in enumerate(self.args):
            if arg == name and i + 1 < len(self.args):
                return self.args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return None


def _holder(message: str) -> _Holder | None:
    """The process DuckDB's lock error names (`... is held in /usr/bin/python3 (PID 123) ...`)."""
    found = _PID.search(message)
    if not found:
        return None
    try:
        raw = Path(f"/proc/{found.group(1)}/cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        raw = ""
    return _Holder(found.group(1), [a for a in raw.split("\0") if a])


def lock_holder(message: str) -> str | None:
    """Who holds the warehouse, in words ('the dashboard (`prefclean dashboard`, PID 12)'); None if DuckDB named no one."""
    holder = _holder(message)
    if holder is None:
        return None
    command = holder.command
    if command in _WHO:
        return _WHO[command].format(pid=holder.pid)
    if command:
        return f"`prefclean {command}` (PID {holder.pid})"
    shown = " ".join(" ".join(holder.args).split())
    return f"PID {holder.pid}" + (f" (`{shown[:120]}`)" if shown else "")


def lock_advice(message: str) -> str | None:
    """What a build that found the warehouse locked should say: who holds it and what to do."""
    holder = _holder(message)
    if holder is None:
        return None
    command = holder.command
    if command in _WHAT_TO_DO:
        timeout = holder.option("--query-timeout")
        return f"{lock_holder(message)} " + _WHAT_TO_DO[command].format(timeout=f"{timeout} s" if timeout else "30 s")
    return f"{lock_holder(message)} holds it; close that process (a notebook, `prefclean sql --write`) and try again"


_REFUSAL = re.compile(r"read-only|read only|external access|lock_configuration|configuration.*locked|"
                      r"Cannot (?:execute|attach|install|load)|Permission Error", re.IGNORECASE)


def explain_error(exc: duckdb.Error) -> PrefcleanError:
    """Turn DuckDB's refusal of a write/attach/file read into a clear message; other errors pass through."""
    message = " ".join(str(exc).split())
    if _REFUSAL.search(message):
        hint = ""
        if "Cannot access file" in message:  # e.g. a Parquet source, which is a view over its files
            hint = ("; a source read in place (`materialized: view`, the default for Parquet) can be queried with "
                    "`prefclean sql --write`")
        return QueryRefused(f"refused: this connection is read-only and cannot write, attach databases, "
                            f"install extensions or read files ({message}){hint}")
    return PrefcleanError(message)
