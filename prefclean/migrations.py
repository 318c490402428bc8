"""Versioned schemas for the DuckDB files prefclean owns: the judgment cache and its own warehouse tables.

The module that owns some tables makes a `Migrations` and adds numbered steps with its `step` decorator;
`migrate(con)` applies the steps a file has not had yet, in order, in one transaction together with their
rows in the file's `migrations` table (one commit, a WAL fsync, for all of a new file's steps). A file made
by an older prefclean (one with no `migrations` table counts as having had none: its first step uses
`if not exists`) is brought up to date when it is opened, and a step that fails leaves the file as it was. Steps are history: one that has shipped is never edited,
a change is a new step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import duckdb

from .errors import PrefcleanError

Step = Callable[[duckdb.DuckDBPyConnection], None]


class MigrationError(PrefcleanError):
    """A file's schema is not one this prefclean can use (written by a newer one, or a step failed)."""


@dataclass(frozen=True)
class Applied:
    version: int
    name: str


class Migrations:
    def __init__(self, what: str, table: str = "migrations"):
        self.what = what  # how errors name the file ("the judgment cache")
        self.table = table  # may be schema-qualified, e.g. _prefclean.migrations
        self.steps: list[tuple[str, Step]] = []

    def step(self, fn: Step) -> Step:
        """Add the next step (numbered from 1 in the order they are defined)."""
        if any(name == fn.__name__ for name, _ in self.steps):
            raise ValueError(f"{self.what}: two migration steps are named {fn.__name__}")
        self.steps.append((fn.__name__, fn))
        return fn

    def applied(self, con: duckdb.DuckDBPyConnection) -> list[Applied]:
        con.execute(f"create table if not exists {self.table} "
                    "(version integer primary key, name varchar not null, applied_at timestamp default now())")
        return [Applied(*row) for row in con.execute(f"select version, name from {self.table} order by version")
                .fetchall()]

    def migrate(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        """Apply the missing steps; returns their names. Raises MigrationError for a file this version cannot
        read: one with steps it does not know (a newer prefclean, or another branch's step)."""
        con.execute("begin transaction")  # every missing step and its row: one commit (a new file had one a step)
        try:
            done = self.applied(con)
            for applied in done:
                known = self.steps[applied.version - 1][0] if applied.version <= len(self.steps) else None
                if known != applied.name:
                    raise MigrationError(
                        f"{self.what} has schema step {applied.version} '{applied.name}', unknown to this prefclean: "
                        "it was written by a newer prefclean; upgrade, or move the file aside")
            new = []
            for version, (name, fn) in enumerate(self.steps[len(done):], start=len(done) + 1):
                try:
                    fn(con)
                    con.execute(f"insert into {self.table} (version, name) values (?, ?)", [version, name])
                except duckdb.Error as exc:
                    raise MigrationError(f"{self.what}: schema step {version} '{name}' failed: "
                                         + " ".join(str(exc).split())) from None
                new.append(name)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        return new
