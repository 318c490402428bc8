"""Fixtures and helpers for the judge and cleaning tests: a fake judge on loopback and tiny projects.

Import what a test module needs:

    from judge_fixtures import judge_project, build, judged, EXAMPLE_DIR   # fake_judge comes via conftest

Texts carry `[[rate=K]]` / `[[rate:MODEL=K]]` markers, so each test decides every rating by writing rows
(see tests/servers/fake_judge.py). One server per test module; `fake_judge` resets it before each test.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from servers.fake_judge import FakeJudge

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = REPO  # the repository root is the example project
JUDGE_MODEL = """{{ config(materialized='table') }}
select id, {{ judge('instruction', 'generations', judge='fake') }} as j
from {{ source('pairs') }}
"""


@pytest.fixture(scope="module")
def _judge_server():
    with FakeJudge() as server:
        yield server


@pytest.fixture
def fake_judge(_judge_server):
    """The module's fake judge, with default settings and zeroed counters."""
    _judge_server.reset()
    return _judge_server


def judge_config(server, model: str = "fake-judge", **settings) -> dict:
    """A `judges:` entry for the fake judge; fast retries so failure tests stay quick."""
    return {"engine": "openai", "base_url": server.url, "model": model, "concurrency": 8, "max_retries": 2,
            "parse_retries": 1, "timeout": 10, **settings}


def judge_project(make_project, server, rows, *, models=None, judges=None, vars=None, dirname=None, **files):
    """A project with an inline `pairs` source, judge(s) on the fake server and a `judged` model by default."""
    config = {"name": "judgetest", "vars": vars or {},
              "sources": {"pairs": {"type": "inline", "rows": rows}},
              "judges": judges or {"fake": judge_config(server)}}
    return make_project(config=config, models={"judged": JUDGE_MODEL} if models is None else models,
                        dirname=dirname, **files)


def build(run_cli, root, *args, ok: bool = True):
    """`prefclean build` in-process; returns (CliResult, seconds)."""
    start = time.perf_counter()
    result = run_cli("build", "--project-dir", root, *args)
    seconds = time.perf_counter() - start
    if ok:
        assert result.exit_code == 0, result
    return result, seconds


def build_api(root, *, ok: bool = True, **options):
    """`prefclean.build(root, **options)` in-process and silent; returns the BuildResult, whose judge counts
    are typed fields (`result.judging.cached`), not text to parse."""
    import prefclean

    result = prefclean.build(root, reporter=prefclean.quiet, **options)
    if ok:
        assert result.ok, result.models
    return result


def judged(root, sql: str = "select id, j from judged order by id"):
    """Rows of a query as dicts (structs come back as dicts)."""
    con = duckdb.connect(str(Path(root) / "target" / "prefclean.duckdb"), read_only=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()


def judge_note(output: str, name: str = "fake") -> dict:
    """The counts in the 'judge NAME (...): judged 3, failed 0, ...' line(s) a build prints, summed."""
    totals: dict[str, int] = {}
    for line in output.splitlines():
        if line.strip().startswith(f"judge {name} ("):
            for key, value in re.findall(r"\b(judged|failed|cached|deduplicated|requests|retries|429s) (\d+)", line):
                totals[key] = totals.get(key, 0) + int(value)
    return totals


def copy_example(tmp_path: Path, server, *, vars=None, rows=None, extra_judges=None) -> Path:
    """The repository's example project in tmp_path, pointed at the fake judge (exports left out).

    With `rows`, the source is those inline pairs (system/instruction/chosen/rejected) instead of the sample.
    """
    root = tmp_path / "example"
    for name in ("models", "macros", "udfs", "data_tests"):
        shutil.copytree(EXAMPLE_DIR / name, root / name)
    config = yaml.safe_load((EXAMPLE_DIR / "prefclean.yml").read_text(encoding="utf-8"))
    config.pop("exports", None)
    if rows is None:
        shutil.copytree(EXAMPLE_DIR / "data", root / "data")
    else:
        config["sources"] = {"pairs": {"type": "inline", "rows": rows}}
        config["vars"]["source"] = "pairs"
    config["judges"] = {"fake": judge_config(server), **(extra_judges or {})}
    config["vars"].update({"judges": ["fake"], **(vars or {})})
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


def summary_json(root) -> dict:
    return json.loads((Path(root) / "target" / "summary.json").read_text(encoding="utf-8"))
