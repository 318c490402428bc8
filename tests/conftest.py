"""Shared fixtures: real projects written into tmp_path, the real CLI, the real warehouse.

    def test_something(make_project, run_cli, query):
        root = make_project(
            config={"sources": {"pairs": {"type": "inline", "rows": [{"a": 1}]}}},
            models={"m": "select * from {{ source('pairs') }}"},
        )
        result = run_cli("build", cwd=root)
        assert result.exit_code == 0, result.output
        assert query(root, "select count(*) from m") == [(1,)]

- `make_project(config=..., models=..., macros=..., udfs=..., data_tests=..., files=...)` writes a project
  and returns its root. `config` is a dict (dumped as YAML, `name` defaults to "proj") or the literal text
  of prefclean.yml. File maps are {relative path: text}; a model or macro name without a suffix gets `.sql`,
  a udfs name gets `.py`; a dict value under models (e.g. "schema.yml") is dumped as YAML.
- `run_cli(*args, cwd=None, input=None)` runs `prefclean ARGS` in-process with click's CliRunner inside cwd and
  returns a CliResult(exit_code, output, exception); output has stdout and stderr together.
- `query(root, sql, params=None)` reads the project's warehouse read-only and returns fetchall() rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml
from click.testing import CliRunner

from prefclean.cli import main

# The fake judge fixtures (`fake_judge`: a loopback judge server per module) for every test module.
pytest_plugins = ["judge_fixtures"]


def _write(root: Path, rel: str, content) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, (dict, list)):
        content = yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def _with_suffix(name: str, suffix: str) -> str:
    return name if Path(name).suffix else name + suffix


@pytest.fixture
def make_project(tmp_path):
    """Factory writing a project under tmp_path (a fresh subfolder per call); returns its root."""
    counter = iter(range(1_000_000))

    def make(config=None, models=None, macros=None, udfs=None, data_tests=None, files=None, *, dirname=None) -> Path:
        root = tmp_path / (dirname or f"proj{next(counter) or ''}")
        root.mkdir(parents=True, exist_ok=True)
        if config is None or isinstance(config, dict):
            _write(root, "prefclean.yml", {"name": "proj", **(config or {})})
        else:
            _write(root, "prefclean.yml", config)
        for folder, files_, suffix in (("models", models, ".sql"), ("macros", macros, ".sql"),
                                       ("udfs", udfs, ".py"), ("data_tests", data_tests, ".sql")):
            for name, text in (files_ or {}).items():
                _write(root, f"{folder}/{_with_suffix(name, suffix)}", text)
        for rel, content in (files or {}).items():
            _write(root, rel, content)
        return root

    return make


@dataclass
class CliResult:
    exit_code: int
    output: str
    exception: BaseException | None

    def __str__(self) -> str:  # so `assert ..., result` shows what the command printed
        return f"exit {self.exit_code}\n{self.output}"


@pytest.fixture
def run_cli():
    """Run the prefclean CLI in-process inside cwd; returns CliResult."""

    def run(*args, cwd=None, input=None) -> CliResult:
        old = os.getcwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            result = CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=True)
        finally:
            os.chdir(old)
        exc = result.exception if not isinstance(result.exception, SystemExit) else None
        return CliResult(result.exit_code, result.output, exc)

    return run


@pytest.fixture
def query():
    """Rows of a query against a project's warehouse (target/prefclean.duckdb unless given a .duckdb path)."""

    def run(root, sql: str, params=None):
        path = Path(root)
        if path.suffix != ".duckdb":
            path = path / "target" / "prefclean.duckdb"
        con = duckdb.connect(str(path), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    return run


@pytest.fixture
def relation_type(query):
    """What stands at schema.name in a project's warehouse: 'BASE TABLE', 'VIEW', or None."""

    def run(root, name: str, schema: str = "main"):
        rows = query(root, "select table_type from information_schema.tables where table_schema = ? "
                           "and table_name = ?", [schema, name])
        return rows[0][0] if rows else None

    return run
