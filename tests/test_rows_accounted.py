"""Every source row accounted for: a pair, or an excluded row with its reason, counted in the run summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from judge_fixtures import build, copy_example, judged, summary_json

REPO = Path(__file__).resolve().parents[1]


def row(name, **extra):
    return {"system": "", "instruction": f"question {name}", "chosen": f"good {name} [[rate=5]]",
            "rejected": f"bad {name} [[rate=2]]", **extra}


# 9 source rows: 4 distinct pairs, and 5 rows that are not pairs.
ROWS = [
    row("a"),
    row("b"),
    row("a"),                          # a repeat of row 1
    row("a", system=None),             # NULL system is the empty system prompt: a repeat of row 1 too
    row("c", instruction=None),        # no prompt
    row("d", rejected=None),           # no rejected response
    row("e", chosen=" \t\n"),          # a blank response
    row("f"),
    row("g", instruction="question \x1fg"),
]


def test_null_empty_and_duplicate_rows_are_counted_in_the_summary_and_listed(tmp_path, run_cli, fake_judge):
    root = copy_example(tmp_path, fake_judge, rows=ROWS, vars={"check_position_bias": False})
    result, _ = build(run_cli, root)
    s = summary_json(root)
    assert s["rows_in"] == 9 and s["pairs"] == 4
    assert s["excluded"] == {"duplicate": 2, "null_field": 2, "empty_field": 1}
    assert s["rows_in"] == s["pairs"] + sum(s["excluded"].values()) and s["unaccounted"] == 0
    assert s["sources"] == {"pairs": 9} and s["excluded_models"] == ["excluded_rows"]
    assert ("rows: 9 read from pairs = 4 pairs + 5 excluded (duplicate 2, null_field 2, empty_field 1); "
            'list them: prefclean sql "select * from excluded_rows"') in result.output
    assert "WARNING" not in result.output
    listed = judged(root, "select source_row, reason, field, duplicate_of, instruction from excluded_rows "
                          "order by source_row")
    assert [(r["source_row"], r["reason"], r["field"], r["duplicate_of"]) for r in listed] == [
        (3, "duplicate", None, 1), (4, "duplicate", None, 1), (5, "null_field", "instruction", None),
        (6, "null_field", "rejected", None), (7, "empty_field", "chosen", None)]
    kept = judged(root, "select source_row from stg_pairs order by source_row")
    assert [r["source_row"] for r in kept] == [1, 2, 8, 9]
    assert json.loads((root / "target/run_results.json").read_text())["summary"]["rows_in"] == 9


def test_a_model_that_loses_rows_on_the_way_is_reported_as_unaccounted(make_project, run_cli):
    rows = [{"id": i, "decision": "keep", "reason": "judge_agrees"} for i in range(5)]
    root = make_project(config={"sources": {"s": {"type": "inline", "rows": rows}}}, models={
        "audit": "{{ config(materialized='table', audit=true) }} select * from {{ source('s') }} where id < 3"})
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    s = json.loads((root / "target/summary.json").read_text())
    assert (s["rows_in"], s["pairs"], s["excluded"], s["unaccounted"]) == (5, 3, {}, 2)
    assert "rows: 5 read from s = 3 pairs + 0 excluded" in result.output
    assert "WARNING: 2 source rows are neither a pair nor an excluded row" in result.output


def _staging_project(make_project, rows, **config):
    """The example's staging models (stg_pairs, excluded_rows) and macros over inline rows."""
    root = make_project(config={"vars": {"source": "pairs"},
                                "sources": {"pairs": {"type": "inline", "rows": rows, **config}}})
    shutil.copytree(REPO / "models" / "staging", root / "models" / "staging")
    shutil.copy(REPO / "macros" / "shuffle.sql", root / "macros" / "shuffle.sql") if (root / "macros").exists() \
        else shutil.copytree(REPO / "macros", root / "macros")
    return root


def test_pairs_that_differ_only_in_where_a_unit_separator_sits_get_two_ids(make_project, run_cli, query):
    rows = [{"system": "", "instruction": "q", "chosen": "a\x1fb", "rejected": "c"},
            {"system": "", "instruction": "q", "chosen": "a", "rejected": "b\x1fc"},
            {"system": "a\x1f", "instruction": "q", "chosen": "x", "rejected": "y"},
            {"system": "a", "instruction": "\x1fq", "chosen": "x", "rejected": "y"}]
    root = _staging_project(make_project, rows)
    result = run_cli("build", "--select", "stg_pairs excluded_rows", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select count(*), count(distinct pair_id) from stg_pairs") == [(4, 4)]
    assert query(root, "select count(*) from excluded_rows") == [(0,)]


def test_format_adapter_rows_are_excluded_with_their_own_reason(make_project, run_cli, query):
    """The same mechanism over format_rows(): its excluded_reason becomes the excluded row's reason."""
    rows = [{"prompt": "2+2?", "chosen": "4", "rejected": "5"},
            {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
            {"prompt": "3+3?", "chosen": None, "rejected": "7"}]
    kept = ("{{ config(materialized='table') }}\n"
            "select * exclude (excluded_reason) from ({{ format_rows('pairs') }}) where excluded_reason is null\n"
            "qualify row_number() over (partition by pair_id order by source_row) = 1")
    excluded = ("{{ config(materialized='table', excluded=true) }}\n"
                "{{ excluded_rows('(' ~ format_rows('pairs', original=true) ~ ')', kept=ref('kept'), key='pair_id', numbered=false, "
                "reason='excluded_reason', fields=['original']) }}")
    audit = ("{{ config(materialized='table', audit=true) }}\n"
             "select pair_id, 'keep' as decision, 'judge_agrees' as reason from {{ ref('kept') }}")
    root = make_project(config={"sources": {"pairs": {"type": "inline", "rows": rows}}},
                        models={"kept": kept, "excluded": excluded, "audit": audit})
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select source_row, reason, duplicate_of from excluded order by 1") == [
        (2, "duplicate", 1), (3, "missing_response", None)]
    s = json.loads((root / "target/summary.json").read_text())
    assert (s["rows_in"], s["pairs"], s["excluded"], s["unaccounted"]) == (
        3, 1, {"duplicate": 1, "missing_response": 1}, 0)


def test_rows_dropped_for_no_known_reason_are_listed_as_unexplained(make_project, run_cli, query):
    rows = [{"system": "", "instruction": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(3)]
    kept = ("{{ config(materialized='table') }}\n"
            "select source_row, {{ pair_id(['instruction']) }} as pair_id from {{ numbered_rows(source('pairs')) }} "
            "where instruction <> 'q1'")
    excluded = ("{{ config(materialized='table', excluded=true) }}\n"
                "{{ excluded_rows(source('pairs'), kept=ref('kept'), key=pair_id(['instruction']), "
                "required=['instruction'], fields=['instruction']) }}")
    root = make_project(config={"sources": {"pairs": {"type": "inline", "rows": rows}}},
                        models={"kept": kept, "excluded": excluded}, macros={"shuffle": (REPO / "macros/shuffle.sql").read_text()})
    result = run_cli("build", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select source_row, reason, instruction from excluded") == [(2, "unexplained", "q1")]


def test_source_row_is_the_position_in_the_source_for_a_parquet_view(make_project, run_cli, query, tmp_path):
    root = _staging_project(make_project, [])
    (root / "prefclean.yml").write_text("name: proj\nvars: {source: pq}\nsources: {pq: {path: pairs.parquet}}\n")
    con = duckdb.connect()
    con.execute(f"copy (select '' as system, 'q' || (range % 700) as instruction, "
                f"case when range % 1000 = 5 then null else 'c' end as chosen, 'r' as rejected, range as n "
                f"from range(3000)) to '{root / 'pairs.parquet'}' (row_group_size 256)")
    result = run_cli("build", "--select", "stg_pairs excluded_rows", cwd=root)
    assert result.exit_code == 0, result
    assert query(root, "select count(*) from stg_pairs") == [(700,)]
    # The first row of each text is kept: row k + 1 for 'qk', except q5, whose first row (6) has no chosen.
    assert query(root, "select instruction, source_row from stg_pairs "
                       "where source_row <> cast(substr(instruction, 2) as int) + 1") == [("q5", 706)]
    nulls = query(root, "select source_row from excluded_rows where reason = 'null_field' order by 1")
    assert nulls == [(6,), (1006,), (2006,)]
    assert query(root, "select count(*) from excluded_rows") == [(2300,)]


def test_a_scaffolded_project_accounts_for_repeats_merged_into_their_pair(tmp_path, run_cli, fake_judge):
    """`prefclean init` projects judge a repeated row once with its pair (source_rows counts them) and list rows
    that do not fit their format in excluded_rows: both are accounted for, with no warning."""
    import yaml

    from judge_fixtures import judge_config

    good = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
    rows = [good, {"prompt": "3+3?", "chosen": "6", "rejected": "7"}, good, {"prompt": "x", "chosen": None,
                                                                             "rejected": "y"}]
    source = tmp_path / "std.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert run_cli("init", "proj", "--from", source, cwd=tmp_path).exit_code == 0
    root = tmp_path / "proj"
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["judges"] = {"fake": judge_config(fake_judge)}
    config["vars"].update({"judges": ["fake"], "check_position_bias": False})
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result, _ = build(run_cli, root)
    s = summary_json(root)
    assert (s["rows_in"], s["pairs"], s.get("merged_duplicates"), s["excluded"], s["unaccounted"]) == (
        4, 2, 1, {"missing_response": 1}, 0)
    assert "= 2 pairs + 1 repeats merged into their pair + 1 excluded (missing_response 1)" in result.output
    assert "source rows are neither a pair" not in result.output  # (the fake judge's drops may warn, this may not)
