"""Python rows to Arrow through the JSON reader: the same arrays pa.array builds, without importing pandas."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa

from prefclean.judge.jsonrows import ArrowRows, array_from_json_lines, json_line, table_from_json_lines
from prefclean.judge.record import CACHE_SCHEMA, CALL_SCHEMA, RESULT_TYPE


def judgment(i: int, **changes) -> dict:
    row = {"ratings": [3, None, 5], "rationales": ["fine ü — 日本語 \"quoted\"\n", None, ""], "winner": None,
           "judge": "default", "model": "m", "task": "ultrafeedback", "aspect": "honesty", "raw": "Rating: 3\t\\",
           "error": None, "prompt_tokens": 2**31 - 1, "completion_tokens": 0, "latency_ms": 52.125, "cached": False,
           "attempts": 1, "key": f"{i:064x}"}
    return {**row, **changes}


def test_results_equal_what_pa_array_builds():
    rows = [judgment(0), judgment(1, ratings=None, rationales=None, error="no answer", latency_ms=None),
            judgment(2, ratings=[], rationales=[], winner=2, cached=True), None,
            judgment(4, raw="x" * 3_000_000)]  # larger than the reader's default block
    got = array_from_json_lines([json_line(r) for r in rows], RESULT_TYPE)
    assert got.type == RESULT_TYPE and got.equals(pa.array(rows, type=RESULT_TYPE))


def test_cache_tables_have_exactly_the_schema_and_missing_keys_are_null():
    calls = [{"key": "k", "judge": "j", "model": "m", "status": "ok", "http_status": 200, "latency_ms": 1.5,
              "attempt": 1}]
    table = table_from_json_lines([json_line(c) for c in calls], CALL_SCHEMA)
    assert table.schema == CALL_SCHEMA
    assert table.to_pylist() == [{**{name: None for name in CALL_SCHEMA.names}, **calls[0]}]
    assert table_from_json_lines([], CACHE_SCHEMA).schema == CACHE_SCHEMA


def test_invalid_text_from_a_judge_becomes_a_question_mark():
    line = json_line(judgment(0, raw="bad \ud800 surrogate"))
    assert array_from_json_lines([line], RESULT_TYPE)[0]["raw"].as_py() == "bad ? surrogate"


def test_judging_never_imports_pandas(tmp_path, fake_judge):
    """pandas took ~0.25 s to import while the first answers waited; nothing in a judging build needs it."""
    import json

    import yaml

    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "pairs.jsonl").write_text("".join(json.dumps(
        {"id": i, "instruction": f"q{i}", "generations": [f"a [[rate=4]] {i}", f"b [[rate=2]] {i}"]}) + "\n"
        for i in range(300)))
    (root / "prefclean.yml").write_text(yaml.safe_dump({
        "name": "nopandas", "sources": {"pairs": {"type": "jsonl", "path": "pairs.jsonl"}},
        "judges": {"fake": {"engine": "openai", "base_url": fake_judge.url, "model": "fake-judge"}}}))
    (root / "models" / "judged.sql").write_text(
        "{{ config(materialized='table') }}\n"
        "select id, {{ judge('instruction', 'generations', judge='fake') }} as j from {{ source('pairs') }}")
    script = ("import sys\nfrom prefclean.cli import main\n"
              "try:\n    main(['build', '--project-dir', *sys.argv[1:]])\nexcept SystemExit as e:\n    code = e.code\n"
              "print('exit', code, 'pandas', 'pandas' in sys.modules)")
    for args in ([], ["--full-refresh"]):  # judged, then answered from the judgment cache
        out = subprocess.run([sys.executable, "-c", script, str(root), *args], capture_output=True, text=True,
                             timeout=300)
        assert out.stdout.strip().endswith("exit 0 pandas False"), out.stdout + out.stderr
    assert fake_judge.stats()["requests"] == 300


def test_arrow_rows_are_taken_in_any_order_with_repeats():
    rows = ArrowRows(RESULT_TYPE)
    first = [rows.add(judgment(i)) for i in range(3)]
    rows.convert()
    later = rows.add(judgment(3, error="failed"))  # converted by take
    taken = rows.take([later, first[0], first[0], first[2]])
    assert [j["key"] for j in taken.to_pylist()] == [f"{i:064x}" for i in (3, 0, 0, 2)]
    assert taken.type == RESULT_TYPE and taken[0]["error"].as_py() == "failed"
    assert len(ArrowRows(RESULT_TYPE).take([])) == 0
