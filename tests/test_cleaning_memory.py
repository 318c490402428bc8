"""The cleaning models under DuckDB's memory limit (issue 16 §6): pair_decisions at 2M pairs ran out of the
build's 1 GB because mode(), string_agg() and ordered aggregates keep per-pair states DuckDB cannot spill. Its
aggregates now spill; these tests check that it fits a small limit and that the output did not change."""

from __future__ import annotations

import random

import duckdb
import pytest
import yaml

from judge_fixtures import build, copy_example, judge_config, judged


def _use_parquet_source(root, select_sql):
    """Point the example project's `pairs` source at a Parquet file of what `select_sql` returns (system,
    instruction, chosen, rejected): generated in DuckDB, as inline YAML or Python rows are slow at this size."""
    path = root / "pairs.parquet"
    con = duckdb.connect()
    con.execute(f"copy ({select_sql}) to '{path}' (format parquet)")
    con.close()
    config = yaml.safe_load((root / "prefclean.yml").read_text(encoding="utf-8"))
    config["sources"] = {"pairs": {"type": "parquet", "path": str(path)}}
    config["vars"]["source"] = "pairs"
    (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


# main before the fix ran out at 100k pairs under 96MB and 128MB; the fix builds 200k under 128MB. One thread, as
# DuckDB's memory per operator grows with the threads: the figure does not depend on the machine's cores.
MANY = 120_000
SMALL_LIMIT = "128MB"


def test_many_pairs_are_cleaned_within_a_small_memory_limit(tmp_path, run_cli, fake_judge, monkeypatch):
    # Pairs differ by their system prompt only, which the judge is not shown: few distinct prompts, so the fake
    # judge answers a handful of requests and the rest are deduplicated; the cleaning still has MANY pairs.
    # i % 5 picks the ratings: (5, 2) keep, (2, 5) drop, (4, 4) tie, (2, 1) both poor, (4, 3) keep
    generated = (f"select 'system ' || i as system, 'question ' || i % 50 as instruction, "
                 f"'chosen ' || i % 50 || ' [[rate=' || [5, 2, 4, 2, 4][i % 5 + 1] || ']]' as chosen, "
                 f"'rejected ' || i % 50 || ' [[rate=' || [2, 5, 4, 1, 3][i % 5 + 1] || ']]' as rejected "
                 f"from range({MANY}) t(i)")
    root = copy_example(tmp_path, fake_judge, vars={"check_position_bias": False})
    _use_parquet_source(root, generated)
    monkeypatch.setenv("PREFCLEAN_MEMORY_LIMIT", SMALL_LIMIT)
    result, _ = build(run_cli, root, "--threads", "1", ok=False)
    assert result.exit_code == 0, result.output[-3000:]
    counts = judged(root, "select count(*) as n, count(distinct pair_id) as pairs, "
                          "count(*) filter (where decision = 'keep') as kept from pair_decisions")
    assert counts == [{"n": MANY, "pairs": MANY, "kept": MANY * 2 // 5}]


def test_an_out_of_memory_error_names_the_model_and_the_setting(make_project, run_cli, monkeypatch):
    # a string_agg over millions of rows keeps its whole result in memory: nothing to spill
    root = make_project(models={"huge": "{{ config(materialized='table') }}\n"
                                        "select string_agg(md5(i::varchar), ',') as s from range(3000000) t(i)"})
    monkeypatch.setenv("PREFCLEAN_MEMORY_LIMIT", "32MB")
    result, _ = build(run_cli, root, "--threads", "1", ok=False)
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "ERROR" in line)
    assert "model 'huge' failed: Out of Memory Error" in line
    assert "under the build's memory limit of 32MB: set PREFCLEAN_MEMORY_LIMIT higher" in line
    assert "--threads 1" in line and "compiled SQL: target/compiled/models/huge.sql" in line
    assert "SET memory_limit" not in line  # DuckDB's advice names a setting the build overrides


# The panel as pair_decisions computed it before issue 16 §6, with the ordered aggregates that do not spill: right at
# any size that fits, so the reference for the one that spills. (min_margin 1; ties of mode(): the first verdict
# seen, which here is the first judge's by name, pair_ratings being in panel order and the panel in name order.)
REFERENCE_PANEL = """
with per_judge as (
  select *, chosen_rating - rejected_rating as margin,
    case when chosen_rating - rejected_rating is null then null
         when chosen_rating - rejected_rating >= 1 then 'chosen'
         when chosen_rating - rejected_rating <= -1 then 'rejected' else 'tie' end as verdict,
    case when chosen_rating_swapped - rejected_rating_swapped is null then null
         when chosen_rating_swapped - rejected_rating_swapped >= 1 then 'chosen'
         when chosen_rating_swapped - rejected_rating_swapped <= -1 then 'rejected' else 'tie' end as verdict_swapped
  from pair_ratings
),
majority as (select pair_id, mode(verdict) as majority_verdict from per_judge group by pair_id)
select
  pair_id,
  count(*) as judges,
  string_agg(distinct judge_model, ', ' order by judge_model) as judge_models,
  avg(chosen_rating) as chosen_rating,
  avg(rejected_rating) as rejected_rating,
  avg(margin) as margin,
  any_value(majority_verdict) as majority_verdict,
  avg(case when verdict = majority_verdict then 1.0 else 0.0 end) as agreement,
  bool_or(error is not null or (bias_checked and swapped_error is not null)) as failed,
  bool_or(bias_checked and verdict is distinct from verdict_swapped) as position_flipped,
  bool_or(bias_checked) as bias_checked,
  bool_or(escalated) as escalated,
  first(chosen_rationale order by judge) as chosen_rationale,
  first(rejected_rationale order by judge) as rejected_rationale,
  list(raw order by judge) as raw_answers,
  list(error order by judge) filter (where error is not null) as errors,
  sum(prompt_tokens) as prompt_tokens,
  sum(completion_tokens) as completion_tokens
from per_judge join majority using (pair_id)
group by pair_id
"""
PANEL_COLUMNS = ["judges", "judge_models", "chosen_rating", "rejected_rating", "margin", "majority_verdict",
                 "agreement", "failed", "position_flipped", "bias_checked", "escalated", "chosen_rationale",
                 "rejected_rationale", "raw_answers", "errors", "prompt_tokens", "completion_tokens"]


def test_a_panels_decisions_are_those_of_the_ordered_aggregates(tmp_path, run_cli, fake_judge):
    # three judges, two of them the same model, named so that name order and model order differ; random ratings
    # per model (some texts without a marker: the default rating), a few failing pairs, the bias check on and
    # some pairs that move with position
    fake_judge.control(fail_if_contains="FAILING", first_position_bonus=2)  # [[biased]] texts gain 2 when first
    models = {"j1": "judge-b", "j2": "judge-a", "j3": "judge-c"}
    rng = random.Random(16)

    def marks():
        return " ".join(f"[[rate:{m}={rng.randint(1, 5)}]]" for m in ("judge-a", "judge-b", "judge-c")
                        if rng.random() < 0.9)

    rows = [{"system": "", "instruction": f"question {i}" + (" FAILING" if i % 37 == 0 else ""),
             "chosen": f"chosen {i} {marks()}" + (" [[biased]]" if i % 7 == 0 else ""), "rejected": f"rejected {i} {marks()}"} for i in range(300)]
    judges = {name: judge_config(fake_judge, model=model) for name, model in models.items()}
    root = copy_example(tmp_path, fake_judge, rows=rows, extra_judges=judges,
                        vars={"judges": list(models), "check_position_bias": True, "min_agreement": 0.6})
    build(run_cli, root)
    con = duckdb.connect(str(root / "target" / "prefclean.duckdb"), read_only=True)
    try:
        con.execute("set threads = 1")  # mode()'s ties go to the first verdict seen: scan pair_ratings in order
        cols = ", ".join(PANEL_COLUMNS)
        got = con.execute(f"select pair_id, {cols} from pair_decisions order by pair_id").fetchall()
        want = con.execute(f"select pair_id, {cols} from ({REFERENCE_PANEL}) order by pair_id").fetchall()
        got_types = con.execute(f"describe select {cols} from pair_decisions").fetchall()
        want_types = con.execute(f"describe select {cols} from ({REFERENCE_PANEL})").fetchall()
    finally:
        con.close()
    assert len(got) == 300 and got == want
    assert [t[:2] for t in got_types] == [t[:2] for t in want_types]
    # the sample exercises what the rewrite has to get right
    panel = {c: [row[i + 1] for row in got] for i, c in enumerate(PANEL_COLUMNS)}
    assert set(panel["judge_models"]) == {"judge-a, judge-b, judge-c"}
    assert sum(e is not None for e in panel["errors"]) == 9 and None in panel["errors"]
    assert {round(a, 2) for a in panel["agreement"]} >= {1.0, 0.67, 0.33}
    assert any(panel["position_flipped"]) and not all(panel["position_flipped"])


def test_the_scaffolded_dpo_audit_model_is_the_examples_with_its_messages_column():
    """`prefclean init`'s dpo pipeline has the example's pair_decisions (plus the conversation's `messages`): a
    fix of the example's aggregates (the spillable panel) reaches the projects users scaffold too."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    example = (repo / "models" / "pair_decisions.sql").read_text(encoding="utf-8")
    scaffolded = (repo / "prefclean" / "project_template" / "dpo" / "models" / "pair_decisions.sql").read_text(
        encoding="utf-8")
    assert scaffolded.replace("s.instruction, s.messages, s.chosen", "s.instruction, s.chosen") == example
