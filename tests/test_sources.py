"""Sources staged into `sources.<name>` through DuckDB readers and Arrow."""

from __future__ import annotations

import json
import os
import time
import tracemalloc

import duckdb
import pytest

from prefclean.errors import EXIT_USER_ERROR, SourceError
from prefclean.project import load_project
from prefclean.sources import stage_source
from prefclean.warehouse import connect

ROWS = [{"id": i, "question": f"q{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(30)]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _copy(select: str, path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"copy ({select}) to '{path}' (format {fmt})")
    con.close()


def _model_over(source: str) -> dict:
    return {"m": f"{{{{ config(materialized='table') }}}} select * from {{{{ source('{source}') }}}}"}


def test_file_sources_with_globs(make_project, run_cli, query):
    root = make_project(
        config={"sources": {
            "pq": {"path": "data/pq/*.parquet"},
            "cs": {"type": "csv", "path": "data/part*.csv"},
            "js": {"path": "data/**/*.jsonl", "columns": {"question": "instruction"}},
        }},
        models={"pq_m": "select * from {{ source('pq') }}", "cs_m": "select * from {{ source('cs') }}",
                "js_m": "select * from {{ source('js') }}"},
        files={"data/a/one.jsonl": _jsonl(ROWS[:10]), "data/b/two.jsonl": _jsonl(ROWS[10:25])},
    )
    _copy("select range as id, 'x' || range as t from range(7)", root / "data/pq/a.parquet", "parquet")
    _copy("select range + 7 as id, 'y' as t from range(5)", root / "data/pq/b.parquet", "parquet")
    _copy("select range as id, 'a' as t from range(3)", root / "data/part1.csv", "csv")
    _copy("select range as id, 'b' as t from range(4)", root / "data/part2.csv", "csv")
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select count(*), count(distinct id) from sources.pq") == [(12, 12)]
    assert query(root, "select count(*) from sources.cs") == [(7,)]
    assert query(root, "select count(*), min(instruction) from sources.js") == [(25, "q0")]
    columns = [r[0] for r in query(root, "select column_name from information_schema.columns "
                                         "where table_schema = 'sources' and table_name = 'js' order by ordinal_position")]
    assert columns == ["id", "instruction", "chosen", "rejected"]
    assert "source pq staged: 12 rows" in result.output


def test_duckdb_file_source(make_project, run_cli, query, tmp_path):
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("create schema raw; create table raw.pairs as select range as id from range(11)")
    con.close()
    root = make_project(config={"sources": {"db": {"type": "duckdb", "path": str(other), "table": "raw.pairs"}}},
                        models=_model_over("db"))
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select count(*), sum(id) from m") == [(11, 55)]

    missing = make_project(config={"sources": {"db": {"type": "duckdb", "path": str(other), "table": "nope"}}},
                           models=_model_over("db"))
    result = run_cli("build", cwd=missing)
    assert result.exit_code == EXIT_USER_ERROR
    assert "source 'db': no table nope" in result.output


def test_inline_rows(make_project, run_cli, query):
    root = make_project(config={"sources": {"pairs": {"rows": [{"a": 1, "b": "x"}, {"a": 2, "b": None}],
                                                      "columns": {"b": "bee"}}}},
                        models=_model_over("pairs"))
    assert run_cli("build", cwd=root).exit_code == 0
    assert query(root, "select a, bee from m order by a") == [(1, "x"), (2, None)]


def test_inline_rows_with_inconsistent_types(make_project, run_cli):
    root = make_project(config={"sources": {"pairs": {"rows": [{"a": 1}, {"a": "text"}]}}}, models=_model_over("pairs"))
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert "source 'pairs': inline rows have inconsistent types" in result.output


def test_huggingface_source_from_local_files_with_split_slicing(make_project, run_cli, query, tmp_path):
    """The `datasets` parquet builder over local files: no network, relative paths are the project's."""
    root = make_project(config={"sources": {"hf": {
        "type": "huggingface", "path": "parquet", "split": "train[:20]",
        "columns": {"question": "instruction"},
        "options": {"data_files": {"train": "data/train.parquet"}, "cache_dir": str(tmp_path / "hf_cache")},
    }}}, models=_model_over("hf"))
    _copy("select range as id, 'q' || range as question from range(50)", root / "data/train.parquet", "parquet")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    result = run_cli("build", "--project-dir", str(root), cwd=elsewhere)
    assert result.exit_code == 0, result
    assert query(root, "select count(*), min(id), max(id) from sources.hf") == [(20, 0, 19)]
    assert query(root, "select instruction from m where id = 3") == [("q3",)]


def test_huggingface_source_saved_to_disk(make_project, run_cli, query, tmp_path):
    import datasets

    root = make_project(config={"sources": {"hf": {"type": "huggingface", "path": "data/saved", "split": "train[5:9]"}}},
                        models=_model_over("hf"))
    ds = datasets.Dataset.from_dict({"id": list(range(30)), "text": [f"t{i}" for i in range(30)]})
    datasets.DatasetDict({"train": ds}).save_to_disk(str(root / "data/saved"))
    before = sorted(p.name for p in (root / "data/saved/train").iterdir())
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select list(id order by id) from m") == [([5, 6, 7, 8],)]
    assert sorted(p.name for p in (root / "data/saved/train").iterdir()) == before  # no cache files written there
    (root / "prefclean.yml").write_text("name: proj\nsources:\n  hf: {type: huggingface, path: data/saved, "
                                        "split: 'train[:10%]'}\n")
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert "split 'train[:10%]' for a saved dataset must be a row range like train[:20]" in result.output


def test_huggingface_source_error_is_one_line(make_project, run_cli, tmp_path):
    root = make_project(config={"sources": {"hf": {"type": "huggingface", "path": "parquet",
                                                   "options": {"data_files": "data/none-*.parquet",
                                                               "cache_dir": str(tmp_path / "c")}}}},
                        models=_model_over("hf"))
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert "source 'hf': cannot load Hugging Face dataset 'parquet'" in result.output
    assert "Traceback" not in result.output


def test_missing_column_in_rename(make_project, run_cli):
    root = make_project(config={"sources": {"s": {"path": "d.jsonl", "columns": {"questoin": "instruction"}}}},
                        models=_model_over("s"), files={"d.jsonl": _jsonl(ROWS[:2])})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert "source 's': column 'questoin' (in `columns`) does not exist" in result.output
    assert "id, question, chosen, rejected" in result.output


def test_missing_file(make_project, run_cli):
    root = make_project(config={"sources": {"s": {"path": "data/*.parquet"}}}, models=_model_over("s"))
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR
    assert "source 's': no file matches data/*.parquet" in result.output


def test_unchanged_source_is_not_staged_again(make_project, run_cli, query):
    root = make_project(config={"sources": {"s": {"path": "d.jsonl"}}}, models=_model_over("s"),
                        files={"d.jsonl": _jsonl(ROWS[:5])})
    first = run_cli("build", cwd=root)
    assert "source s staged: 5 rows" in first.output, first
    staged_at = query(root, "select staged_at from _prefclean.source_state where name = 's'")
    second = run_cli("build", cwd=root)
    assert "source s up to date: 5 rows" in second.output, second
    assert query(root, "select staged_at from _prefclean.source_state where name = 's'") == staged_at
    (root / "d.jsonl").write_text(_jsonl(ROWS[:8]))
    os.utime(root / "d.jsonl", ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    third = run_cli("build", cwd=root)
    assert "source s staged: 8 rows" in third.output, third
    assert query(root, "select count(*) from m") == [(8,)]
    forced = run_cli("build", "--full-refresh", cwd=root)
    assert "source s staged: 8 rows" in forced.output


def test_changing_renames_restages(make_project, run_cli, query):
    root = make_project(config={"sources": {"s": {"path": "d.jsonl"}}}, models=_model_over("s"),
                        files={"d.jsonl": _jsonl(ROWS[:3])})
    assert run_cli("build", cwd=root).exit_code == 0
    (root / "prefclean.yml").write_text("name: proj\nsources:\n  s: {path: d.jsonl, columns: {question: instruction}}\n")
    result = run_cli("build", cwd=root)
    assert "source s staged" in result.output, result
    assert query(root, "select count(instruction) from m") == [(3,)]


@pytest.mark.parametrize("materialized", ["view", "table"])
def test_million_row_parquet_is_staged_without_python_rows(make_project, materialized):
    root = make_project(config={"sources": {"big": {"path": "big.parquet", "columns": {"question": "instruction"},
                                                    "materialized": materialized}}})
    _copy("select range as id, 'question ' || range as question, 'c' as chosen, 'r' as rejected "
          "from range(1000000)", root / "big.parquet", "parquet")
    project = load_project(root)
    con = connect(project.warehouse)
    try:
        tracemalloc.start()
        start = time.perf_counter()
        rows, staged = stage_source(con, project, project.sources["big"])
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert (rows, staged) == (1_000_000, True)
        assert con.execute("select count(distinct id), max(instruction) from sources.big").fetchall() == \
            [(1_000_000, "question 999999")]
    finally:
        con.close()
    # A million rows as Python objects would be hundreds of MB of Python allocations.
    assert peak < 20 * 1024 * 1024, f"Python allocated {peak / 1e6:.0f} MB while staging"
    assert seconds < 30, f"staging 1M rows took {seconds:.1f}s"  # ~1-4 s; generous for a loaded CI machine


def test_parquet_is_read_in_place_and_other_files_are_copied(make_project, run_cli, query, relation_type,
                                                             tmp_path):
    """Parquet sources are views over their files (by absolute path); `materialized: table` snapshots them."""
    root = make_project(config={"sources": {"pq": {"path": "d/pairs.parquet", "columns": {"question": "instruction"}},
                                            "snap": {"path": "d/pairs.parquet", "materialized": "table"},
                                            "js": {"path": "d.jsonl"}}},
                        models={**_model_over("pq"), "n": "select count(*) as n from {{ source('snap') }}",
                                "j": "select * from {{ source('js') }}"},
                        files={"d.jsonl": _jsonl(ROWS[:4])})
    _copy("select range as id, 'q' || range as question from range(5)", root / "d/pairs.parquet", "parquet")
    first = run_cli("build", "--project-dir", str(root.relative_to(tmp_path)), cwd=tmp_path)
    assert first.exit_code == 0, first
    assert "source pq staged: 5 rows" in first.output and "source snap staged: 5 rows" in first.output
    assert [relation_type(root, n, "sources") for n in ("pq", "snap", "js")] == ["VIEW", "BASE TABLE", "BASE TABLE"]
    assert query(root, "select count(*), max(instruction) from m") == [(5, "q4")]

    _copy("select range as id, 'q' || range as question from range(9)", root / "d/pairs.parquet", "parquet")
    os.utime(root / "d/pairs.parquet", ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    # Until the next build, the view reads the new file and the snapshot keeps what was staged.
    assert query(root, "select (select count(*) from sources.pq), (select count(*) from sources.snap)") == [(9, 5)]
    second = run_cli("build", cwd=root)
    assert "source pq staged: 9 rows" in second.output and "source snap staged: 9 rows" in second.output, second
    assert query(root, "select count(*) from m") == [(9,)]

    # A source switched from view to table (and back) replaces what stood there.
    (root / "prefclean.yml").write_text("name: proj\nsources:\n  pq: {path: d/pairs.parquet, materialized: table, "
                                        "columns: {question: instruction}}\n  snap: {path: d/pairs.parquet}\n"
                                        "  js: {path: d.jsonl}\n")
    third = run_cli("build", cwd=root)
    assert third.exit_code == 0, third
    assert [relation_type(root, n, "sources") for n in ("pq", "snap")] == ["BASE TABLE", "VIEW"]


def test_read_only_sql_on_a_source_read_in_place_says_what_to_do(make_project, run_cli):
    root = make_project(config={"sources": {"pq": {"path": "p.parquet"}}}, models=_model_over("pq"))
    _copy("select range as id from range(3)", root / "p.parquet", "parquet")
    assert run_cli("build", cwd=root).exit_code == 0
    refused = run_cli("sql", "select count(*) as n from sources.pq", cwd=root)
    assert refused.exit_code == EXIT_USER_ERROR and "prefclean sql --write" in refused.output, refused
    assert "3" in run_cli("sql", "select count(*) as n from m", cwd=root).output  # models are tables
    allowed = run_cli("sql", "--write", "select count(*) as n from sources.pq", cwd=root)
    assert allowed.exit_code == 0 and "3" in allowed.output, allowed


@pytest.mark.parametrize("setting, message", [
    ({"path": "p.parquet", "materialized": "copy"}, "`sources.s.materialized` is 'copy', expected 'view' or 'table'"),
    ({"rows": [{"a": 1}], "materialized": "view"},
     "`sources.s.materialized` cannot be 'view' for an inline source (only parquet, jsonl, csv files"),
])
def test_source_materialized_errors(make_project, run_cli, setting, message):
    root = make_project(config={"sources": {"s": setting}}, models=_model_over("s"))
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR and message in result.output, result


def test_stage_source_raises_typed_error(make_project):
    root = make_project(config={"sources": {"s": {"type": "csv", "path": "nothing.csv"}}})
    project = load_project(root)
    con = connect(project.warehouse)
    try:
        with pytest.raises(SourceError, match="no file matches nothing.csv"):
            stage_source(con, project, project.sources["s"])
    finally:
        con.close()


def test_reader_options_reach_duckdb(make_project, run_cli, query):
    """Options override the defaults (csv header) and may be lists or mappings (names, columns)."""
    root = make_project(config={"sources": {
        "plain": {"type": "csv", "path": "d.csv", "options": {"delim": ";"}},
        "noheader": {"type": "csv", "path": "d.csv", "options": {"header": False, "delim": ";"}},
        "named": {"type": "csv", "path": "d.csv", "options": {"delim": ";", "names": ["x", "y"]}},
        "typed": {"type": "csv", "path": "d.csv", "options": {"delim": ";", "columns": {"a": "VARCHAR", "b": "VARCHAR"}}},
    }}, models={n: f"select * from {{{{ source('{n}') }}}}" for n in ("plain", "noheader", "named", "typed")},
        files={"d.csv": "a;b\n1;x\n2;y\n"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select count(*) from noheader") == [(3,)]
    assert query(root, "select x, y from named order by x") == [(1, "x"), (2, "y")]
    assert query(root, "select typeof(a) from typed limit 1") == [("VARCHAR",)]
    assert query(root, "select typeof(a) from plain limit 1") == [("BIGINT",)]


def _pairs_project(make_project, rows_text: str, **source):
    """The example's staging models over a JSONL file holding rows_text."""
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    root = make_project(config={"vars": {"source": "pairs"}, "sources": {"pairs": {"path": "pairs.jsonl", **source}}},
                        files={"pairs.jsonl": rows_text})
    shutil.copytree(repo / "models" / "staging", root / "models" / "staging")
    shutil.copytree(repo / "macros", root / "macros")
    return root


PAIR = {"system": "", "instruction": "q", "chosen": "a", "rejected": "b"}


@pytest.mark.parametrize("rows, message", [
    ([{k: v for k, v in PAIR.items() if k != "chosen"} | {"choosen": "a"}],
     "source 'pairs' (pairs.jsonl) has no column 'chosen' (text), which model 'stg_pairs' reads; it has system, "
     "instruction, rejected, choosen; did you mean 'choosen' (rename it with `columns: {choosen: chosen}`)?"),
    ([PAIR | {"chosen": 3}], "source 'pairs' (pairs.jsonl): column 'chosen' is BIGINT; model 'stg_pairs' expects text"),
    ([PAIR | {"chosen": [{"role": "assistant", "content": "a"}]}],
     "source 'pairs' (pairs.jsonl): column 'chosen' is a list of chat messages"),
    ([], "source 'pairs' (pairs.jsonl) is empty: model 'stg_pairs' needs rows with columns system, instruction, "
         "chosen, rejected"),
])
def test_a_source_of_the_wrong_shape_names_the_source_file_column_and_expected_type(make_project, run_cli, rows, message):
    root = _pairs_project(make_project, _jsonl(rows))
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert message in result.output and "Binder" not in result.output and "Conversion" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == [
        result.output.strip().splitlines()[-1]], result  # one error line, no traceback
    if "chat messages" in message:
        assert "chat-format data (lists of messages) is read by a format adapter" in result.output
        assert "format_rows('pairs')" in result.output and "prefclean init DIR --from FILE" in result.output


def test_an_empty_file_with_renamed_columns_says_it_is_empty(make_project, run_cli):
    root = _pairs_project(make_project, "", columns={"question": "instruction"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert "source 'pairs': pairs.jsonl is empty (no rows, so no column 'question')" in result.output


@pytest.mark.parametrize("bad_line", [1, 6, 7])
def test_a_malformed_jsonl_line_is_reported_with_its_own_line_number(make_project, run_cli, bad_line):
    lines = [json.dumps(PAIR | {"instruction": f"q{i}"}) for i in range(1, 8)]
    lines[bad_line - 1] = lines[bad_line - 1][:-1]  # the closing brace missing
    root = _pairs_project(make_project, "\n".join(lines) + "\n")
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert f'pairs.jsonl", line {bad_line} ({{"system": ""' in result.output, result
    assert f"line {bad_line + 1}" not in result.output


def test_a_jsonl_line_that_is_not_utf8_is_named_by_its_own_line_number(make_project, run_cli):
    lines = [json.dumps(PAIR | {"instruction": f"q{i}"}).encode() for i in range(1, 4)]
    lines[1] = lines[1].replace(b'"q2"', b'"q\xff2"')
    root = _pairs_project(make_project, "")
    (root / "pairs.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = run_cli("build", cwd=root)
    assert result.exit_code == EXIT_USER_ERROR, result
    assert 'pairs.jsonl", line 2 (' in result.output and "line 3" not in result.output, result
