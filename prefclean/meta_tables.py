"""prefclean's own tables in the warehouse (schema `_prefclean`), made and evolved by numbered steps.

`model_runs` (one row per model per build), `source_state` (each staged source's fingerprint, so an
unchanged source is not staged again), `run_summaries` (the run summary as JSON) and `model_relations` (the
schema and name each model was last built under). `warehouse.connect`
applies the missing steps whenever it opens the warehouse for writing, so a warehouse built by an older
prefclean keeps working. The steps name the schema literally: they are history, and must not change when
a constant does.
"""

from __future__ import annotations

import duckdb

from .migrations import Migrations

MIGRATIONS = Migrations("the warehouse's _prefclean tables", table="_prefclean.migrations")


@MIGRATIONS.step
def initial(con: duckdb.DuckDBPyConnection) -> None:
    """The tables as prefclean 0.1 made them, each on first use (before the warehouse had migrations)."""
    con.execute("create schema if not exists _prefclean")
    con.execute("create table if not exists _prefclean.model_runs (run_id varchar, model varchar, status varchar, "
                "materialized varchar, rows bigint, seconds double, message varchar, finished_at timestamp)")
    con.execute("create table if not exists _prefclean.source_state "
                "(name varchar primary key, fingerprint varchar, rows bigint, staged_at timestamp)")
    con.execute("create table if not exists _prefclean.run_summaries "
                "(run_id varchar, created_at timestamp, summary json)")


@MIGRATIONS.step
def model_relations(con: duckdb.DuckDBPyConnection) -> None:
    """Where each model was last built (its `schema` and `alias` config may put it elsewhere than main.NAME):
    exports, the summary, the dashboard and `prefclean sql` find models through it."""
    con.execute("create table if not exists _prefclean.model_relations "
                "(model varchar primary key, schema_name varchar, identifier varchar, built_at timestamp)")
