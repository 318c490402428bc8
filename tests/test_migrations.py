"""Versioned schemas: steps run once, in order, all or nothing, and a file from a newer prefclean is refused
with one line instead of being written to."""

from __future__ import annotations

import duckdb
import pytest

from prefclean import meta_tables
from prefclean.migrations import MigrationError, Migrations
from prefclean.project import load_project
from prefclean.warehouse import connect


def steps() -> Migrations:
    m = Migrations("the test file")

    @m.step
    def create_items(con):
        con.execute("create table if not exists items (id integer)")

    @m.step
    def add_label(con):
        con.execute("alter table items add column label varchar")

    return m


def test_missing_steps_run_once_in_order_and_are_recorded():
    con = duckdb.connect()
    m = steps()
    assert m.migrate(con) == ["create_items", "add_label"]
    assert m.migrate(con) == []
    assert con.execute("select version, name from migrations order by version").fetchall() == [
        (1, "create_items"), (2, "add_label")]

    @m.step
    def add_weight(con):
        con.execute("alter table items add column weight double")

    assert m.migrate(con) == ["add_weight"]
    assert [r[0] for r in con.execute("describe items").fetchall()] == ["id", "label", "weight"]


def test_a_failing_step_leaves_the_file_as_it_was():
    con = duckdb.connect()
    m = steps()
    m.migrate(con)

    @m.step
    def half_done(con):
        con.execute("alter table items add column note varchar")
        con.execute("select * from no_such_table")

    with pytest.raises(MigrationError, match="schema step 3 'half_done' failed"):
        m.migrate(con)
    assert [r[0] for r in con.execute("describe items").fetchall()] == ["id", "label"]
    assert con.execute("select max(version) from migrations").fetchone()[0] == 2


def test_the_missing_steps_commit_together_so_a_later_failure_undoes_the_earlier_ones():
    con = duckdb.connect()
    m = steps()

    @m.step
    def broken(con):
        con.execute("select * from no_such_table")

    with pytest.raises(MigrationError, match="schema step 3 'broken' failed"):
        m.migrate(con)  # steps 1 and 2 ran first, in the same transaction
    assert con.execute("select count(*) from duckdb_tables() where table_name in ('items', 'migrations')"
                       ).fetchone()[0] == 0


def test_a_file_from_a_newer_prefclean_is_refused():
    con = duckdb.connect()
    steps().migrate(con)
    older = Migrations("the test file")
    older.step(steps().steps[0][1])
    with pytest.raises(MigrationError, match="step 2 'add_label'.*newer prefclean"):
        older.migrate(con)


def test_a_judgment_cache_from_a_newer_prefclean_fails_the_model_with_one_line(make_project, run_cli, fake_judge):
    from judge_fixtures import judge_project

    root = judge_project(make_project, fake_judge, [{"id": 1, "instruction": "q", "generations": ["a", "b"]}])
    (root / "target").mkdir()
    con = duckdb.connect(str(root / "target" / "judgments.duckdb"))
    con.execute("create table migrations (version integer primary key, name varchar, applied_at timestamp)")
    con.execute("insert into migrations values (1, 'initial', now()), (2, 'from_the_future', now())")
    con.close()
    result = run_cli("build", "--project-dir", root)
    assert result.exit_code == 1, result
    [line] = [line for line in result.output.splitlines() if "from_the_future" in line]
    assert "ERROR table judged" in line and "target/judgments.duckdb" in line, result
    assert "written by a newer prefclean; upgrade, or move the file aside" in line, result
    assert "Traceback" not in result.output, result
    assert fake_judge.stats()["requests"] == 0


def test_a_warehouse_built_before_migrations_gets_them_in_its_own_schema(make_project):
    root = make_project(models={"migrations": "select 1 as x"})  # a user model may be called `migrations`
    project = load_project(root)
    project.warehouse.parent.mkdir(parents=True)
    old = duckdb.connect(str(project.warehouse))
    old.execute("create schema _prefclean")
    old.execute("create table _prefclean.model_runs (run_id varchar, model varchar, status varchar, "
                "materialized varchar, rows bigint, seconds double, message varchar, finished_at timestamp)")
    old.execute("insert into _prefclean.model_runs values ('r1', 'm', 'success', 'table', 3, 0.1, '', now())")
    old.close()
    con = connect(project.warehouse)
    try:
        assert con.execute("select name from _prefclean.migrations").fetchall() == [
            (name,) for name, _ in meta_tables.MIGRATIONS.steps]
        assert con.execute("select run_id from _prefclean.model_runs").fetchall() == [("r1",)]
        assert con.execute("select count(*) from _prefclean.source_state").fetchone() == (0,)
    finally:
        con.close()
