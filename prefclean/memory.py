"""DuckDB's memory cap for a build, and what to tell a user whose model ran out of it.

The cap makes big models spill to disk (next to the warehouse) instead of growing with the data; a query whose
state cannot spill still fails at it, and the user then needs to know which knob is prefclean's."""

from __future__ import annotations

import os

import duckdb

from .errors import PrefcleanError

DEFAULT_MEMORY_LIMIT = "1GB"


def memory_limit() -> str:
    """The cap a build sets: PREFCLEAN_MEMORY_LIMIT (a DuckDB size such as 8GB), else 1GB."""
    return os.environ.get("PREFCLEAN_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT


def bound_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Cap DuckDB's memory. DuckDB's own default is 80% of RAM: a million pairs then took 4 GB for the
    cleaning joins alone."""
    limit = memory_limit()
    try:
        con.execute(f"set memory_limit = '{limit.replace(chr(39), '')}'")
    except duckdb.Error:
        raise PrefcleanError(f"PREFCLEAN_MEMORY_LIMIT is {limit!r}: expected a size such as 2GB or 512MB") from None


def out_of_memory_message(exc: duckdb.Error) -> str:
    """DuckDB's out-of-memory error in prefclean's terms: its own advice (SET threads, SET memory_limit) names
    settings a build sets itself, so the user is told the environment variable and the flag instead."""
    first = str(exc).strip().splitlines()[0]
    return (f"{first} under the build's memory limit of {memory_limit()}: set PREFCLEAN_MEMORY_LIMIT higher "
            f"(e.g. PREFCLEAN_MEMORY_LIMIT=4GB prefclean build) or use fewer threads (--threads 1), and build "
            f"again; the models built before this one are kept, and judgments already made are in the judgment "
            f"cache, so they are not asked again")
