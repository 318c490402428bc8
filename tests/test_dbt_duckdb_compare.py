"""The same dbt project built by prefclean and by dbt-duckdb gives the same warehouse.

docs/dbt_shop is a small dbt-style shop of our own: seeds (column_types, an alias, a custom schema),
staging views in `+schema: staging`, marts tables, an ephemeral model, an incremental model merged on a
unique_key (built twice, the second time with another var), macros through adapter.dispatch and return(),
folder and model hooks, on-run-start/end, YAML config, persist_docs, an enforced contract, env_var/var/target/this, every test form (generic with
`arguments:` and without, `config:` severity/where/error_if/warn_if/store_failures, a {% test %} block at column
and model level, a singular test) and a unit test. Its dbt_project.yml and profiles.yml sit in dbt/; prefclean.yml
says the same. dbt-duckdb runs from .venv-dbt (`bash .ci/install-dbt.sh`; CI installs it).

Every relation both warehouses hold is compared: kind, row count, a hash of the rows and the column types; so
are the two tools' test outcomes. prefclean's own schemas (sources, _prefclean) are the only relations dbt lacks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from prefclean.errors import EXIT_OK

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "docs" / "dbt_shop"  # (not under tests/: the example project would read it as its dbt tests/)
DBT = REPO / ".venv-dbt" / "bin" / "dbt"
PREFCLEAN_OWN_SCHEMAS = ("sources", "_prefclean")  # staged sources and prefclean's bookkeeping: no dbt counterpart

pytestmark = pytest.mark.dbt


def _dbt_or_skip() -> Path:
    if DBT.exists():
        return DBT
    if os.environ.get("CI"):
        pytest.fail(f"{DBT.relative_to(REPO)} is missing in CI: .ci/run must run `bash .ci/install-dbt.sh`")
    pytest.skip(f"dbt-duckdb is not installed here ({DBT.relative_to(REPO)}): run `bash .ci/install-dbt.sh`")


def _copy(tmp_path: Path, kind: str) -> Path:
    root = tmp_path / kind
    shutil.copytree(FIXTURE, root)
    if kind == "dbt":  # dbt's two files beside the models, instead of prefclean.yml
        for path in (root / "dbt").iterdir():
            path.rename(root / path.name)
        (root / "dbt").rmdir()
        (root / "prefclean.yml").unlink()
    else:
        shutil.rmtree(root / "dbt")
    return root


def _run_dbt(dbt: Path, root: Path, *args: str) -> dict:
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1", "DBT_VERSION_CHECK": "false",
           "DBT_PROFILES_DIR": str(root)}
    env.pop("SHOP_REGION", None)
    done = subprocess.run([str(dbt), "build", "--project-dir", str(root), "--no-partial-parse", *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return json.loads((root / "target" / "run_results.json").read_text())


def _snapshot(path: Path, skip: tuple[str, ...] = ()) -> dict[tuple[str, str], tuple]:
    """(schema, name) -> (kind, rows, md5 of the sorted rows as text, [(column, type)...], comments) for every
    relation."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for schema, name, kind in con.execute(
                "select table_schema, table_name, table_type from information_schema.tables "
                "where table_catalog = current_database() order by 1, 2").fetchall():
            if schema in skip:
                continue
            rel = f'"{schema}"."{name}"'
            rows, digest = con.execute(
                f"select count(*), md5(coalesce(string_agg(cast(t as varchar), chr(10) order by cast(t as varchar)), "
                f"'')) from {rel} t").fetchall()[0]
            columns = con.execute(
                "select column_name, data_type from information_schema.columns where table_catalog = "
                "current_database() and table_schema = ? and table_name = ? order by ordinal_position",
                [schema, name]).fetchall()
            comments = con.execute(  # persist_docs: the relation's and its columns' comments
                "select coalesce((select comment from duckdb_tables() where database_name = current_database() and "
                "schema_name = $1 and table_name = $2), (select comment from duckdb_views() where database_name = "
                "current_database() and schema_name = $1 and view_name = $2)), (select list(column_name || ': ' || "
                "comment order by column_index) from duckdb_columns() where database_name = current_database() and "
                "schema_name = $1 and table_name = $2 and comment is not null)", [schema, name]).fetchall()[0]
            out[(schema, name)] = (kind, rows, digest, columns, comments)
        return out
    finally:
        con.close()


def _dbt_outcomes(results: dict) -> dict[str, int]:
    statuses = [r["status"] for r in results["results"] if r["unique_id"].split(".")[0] in ("test", "unit_test")]
    return {s: statuses.count(s) for s in ("pass", "warn", "fail", "error")}


def _prefclean_outcomes(root: Path) -> dict[str, int]:
    tests = json.loads((root / "target" / "run_results.json").read_text()).get("tests") or []
    statuses = [t["status"] for t in tests]
    return {s: statuses.count(s) for s in ("pass", "warn", "fail", "error")}


def test_prefclean_and_dbt_duckdb_build_the_same_warehouse_from_one_dbt_project(tmp_path, run_cli, monkeypatch):
    dbt = _dbt_or_skip()
    monkeypatch.delenv("SHOP_REGION", raising=False)
    ours, theirs = _copy(tmp_path, "prefclean"), _copy(tmp_path, "dbt")

    first = run_cli("build", cwd=ours)
    assert first.exit_code == EXIT_OK, first
    outcomes = _prefclean_outcomes(ours)
    second = run_cli("build", "--vars", '{"batch": 2}', cwd=ours)  # the incremental model merges this time
    assert second.exit_code == EXIT_OK, second
    dbt_first = _run_dbt(dbt, theirs)
    _run_dbt(dbt, theirs, "--vars", "{batch: 2}")

    assert outcomes == _dbt_outcomes(dbt_first) == {"pass": 18, "warn": 1, "fail": 0, "error": 0}
    mine = _snapshot(ours / "target" / "prefclean.duckdb", skip=PREFCLEAN_OWN_SCHEMAS)
    dbts = _snapshot(theirs / "dbt.duckdb")
    assert sorted(mine) == sorted(dbts)
    different = {rel: {"prefclean": mine[rel], "dbt": dbts[rel]} for rel in mine if mine[rel] != dbts[rel]}
    assert not different, json.dumps({".".join(k): v for k, v in different.items()}, indent=1, default=str)
    # The fixture exercises what it says it does (else the comparison proves little).
    assert {("main_staging", "stg_orders"), ("main_raw", "payments_raw"), ("main", "fct_orders"),
            ("main_dbt_test__audit", "payments_strictly_positive")} <= set(mine)
    assert mine[("main", "order_events")][1] == 10 and mine[("main", "audit_log")][1] > 2
    assert mine[("main_staging", "stg_orders")][4] == ("one row per order", [
        "order_id: the shop's order number", "customer_id: ", "order_date: ", "status: "])
    con = duckdb.connect(str(ours / "target" / "prefclean.duckdb"), read_only=True)
    try:
        assert con.execute("select batch, count(*) from order_events group by 1 order by 1").fetchall() == [
            (1, 7), (2, 3)]
    finally:
        con.close()
