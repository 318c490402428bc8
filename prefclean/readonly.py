"""Read-only access to the warehouse for `prefclean sql` and the dashboard.

The connection is opened read-only, with external access disabled (no ATTACH, no reading or writing
files, no INSTALL/LOAD of extensions) and the configuration locked so a query cannot turn it back on.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from .errors import PrefcleanError

SAFE_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


class QueryRefused(PrefcleanError):
    """A query tried to write, attach, install extensions or read files."""


def open_readonly(warehouse: Path, *, safe: bool = True) -> duckdb.DuckDBPyConnection:
    if not warehouse.exists():
        raise PrefcleanError(f"no warehouse at {warehouse}: run `prefclean build` first")
    try:
        return duckdb.connect(str(warehouse), read_only=True, config=SAFE_CONFIG if safe else {})
    except duckdb.IOException as exc:
        raise PrefcleanError(f"cannot open {warehouse} read-only: {' '.join(str(exc).split())}") from None


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
