"""Properties of the uncertain bias check's pure rules, on the example's compiled models run on a local DuckDB:

- "would the first pass keep it" (first_pass_decision, over a judged row's list of judgments) is the decision
  pair_decisions gives the same pair when it has no swapped pass: one rule, two shapes of the same data;
- the audit's bias_check (pair_decisions, from its panel columns) says what the check decided in judged_pairs
  (bias_check_status), for any panel, ratings, failures, order and thresholds;
- the tilt rule in SQL (position_tilt) and the summary's twin (prefclean.summary.position_tilt) agree.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from prefclean.compiler import Compiler
from prefclean.judge.record import RESULT_SQL
from prefclean.project import load_project
from prefclean.summary import position_tilt

REPO = Path(__file__).resolve().parents[1]
PROBE = """{{ config(materialized='table') }}
{%- set bias = bias_check_mode('uncertain', var('bias_check_margin'), direction='both', keep=decision_settings()) %}
select pair_id,
  {{ bias_check_status('judgments', '"order"', bias) }} as status,
  struct_extract({{ first_pass_decision('judgments', '"order"', decision_settings()) }}, 'decision') as decision
from {{ ref('judged_pairs') }}
"""
TILT = """{{ config(materialized='table') }}
select a, b, {{ position_tilt('a', 'b') }} as favoured from tilt_input
"""
# a few threshold sets (each compiles the models once): the example's, and each setting moved
SETTINGS = st.sampled_from([
    {"min_margin": 1, "poor_max": 2, "min_agreement": 1.0, "allow_flip": False, "bias_check_margin": 1},
    {"min_margin": 2, "poor_max": 1, "min_agreement": 0.5, "allow_flip": True, "bias_check_margin": 2},
    {"min_margin": 1, "poor_max": 3, "min_agreement": 0.67, "allow_flip": False, "bias_check_margin": 0.5},
    {"min_margin": 1, "poor_max": 1, "min_agreement": 0.5, "allow_flip": True, "bias_check_margin": 0}])
_compiled: dict[tuple, dict[str, str]] = {}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("example")
    for name in ("models", "macros"):
        shutil.copytree(REPO / name, root / name)
    (root / "models" / "probe.sql").write_text(PROBE)
    (root / "models" / "tilt_probe.sql").write_text(TILT)
    return root


def compiled(root: Path, vars: dict) -> dict[str, str]:
    key = tuple(sorted(vars.items()))
    if key not in _compiled:
        config = yaml.safe_load((REPO / "prefclean.yml").read_text(encoding="utf-8"))
        config.pop("exports", None)
        config["vars"].update(vars, check_position_bias="uncertain", bias_check_direction="both")
        (root / "prefclean.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        models = Compiler(load_project(root)).parse_all()
        _compiled[key] = {n: models[n].compiled_sql for n in ("pair_ratings", "pair_decisions", "probe", "tilt_probe")}
    return _compiled[key]


def judgment(ratings, error=None):
    return {"ratings": ratings, "judge": "j", "error": error}


rating = st.integers(1, 5)
member = st.one_of(st.tuples(rating, rating).map(lambda r: judgment(list(r))),
                   st.just(judgment(None, "judge failed")))


@st.composite
def pairs(draw):
    panel = draw(st.integers(1, 3))
    return [{"pair_id": f"p{i}", "order": draw(st.sampled_from([["chosen", "rejected"], ["rejected", "chosen"]])),
             "judgments": draw(st.lists(member, min_size=panel, max_size=panel))}
            for i in range(draw(st.integers(1, 8)))]


def load(con, rows, statuses=None):
    """judged_pairs and shuffled_pairs from the drawn rows; a pair's swapped pass (its first pass mirrored) only
    where the check ran (statuses[pair] == 'swapped'), as judged_pairs does."""
    con.execute(f"create or replace table judged_pairs (pair_id varchar, \"order\" varchar[], "
                f"judgments {RESULT_SQL}[], judgments_reversed {RESULT_SQL}[])")
    con.execute("create or replace table shuffled_pairs as select pair_id, '' as system, 'q' as instruction, "
                "'c' as chosen, 'r' as rejected, ['c', 'r'] as generations, \"order\" from judged_pairs")
    for r in rows:
        swapped = None
        if statuses and statuses[r["pair_id"]] == "swapped":
            swapped = [judgment(j["ratings"][::-1] if j["ratings"] else None, j["error"]) for j in r["judgments"]]
        con.execute("insert into judged_pairs values (?, ?, ?, ?)", [r["pair_id"], r["order"], r["judgments"], swapped])
    con.execute("create or replace table shuffled_pairs as select pair_id, '' as system, 'q' as instruction, "
                "'c' as chosen, 'r' as rejected, ['c', 'r'] as generations, \"order\" from judged_pairs")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=pairs(), vars=SETTINGS)
def test_the_first_pass_decision_is_pair_decisions_and_the_audit_says_what_the_check_decided(example, rows, vars):
    sql = compiled(example, vars)
    con = duckdb.connect()
    load(con, rows)
    probe = {p: (s, d) for p, s, d in con.execute(f"select * from ({sql['probe']})").fetchall()}
    load(con, rows, {p: s for p, (s, _) in probe.items()})
    con.execute(f"create table pair_ratings as {sql['pair_ratings']}")
    audit = {p: (d, b) for p, d, b in con.execute(
        f"select pair_id, judge_decision, bias_check from ({sql['pair_decisions']})").fetchall()}
    assert set(audit) == set(probe)  # every pair accounted for
    for pair_id, (status, decision) in probe.items():
        judge_decision, bias_check = audit[pair_id]
        assert bias_check == status, (pair_id, rows, vars)
        if status != "swapped":  # no swapped pass: the judges' decision is the first pass's
            assert judge_decision == decision, (pair_id, rows, vars)
        assert status != "would_drop" or decision == "drop"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(counts=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 400)), min_size=1, max_size=20))
def test_the_tilt_rule_in_sql_and_in_the_summary_agree(example, counts):
    sql = compiled(example, {})
    con = duckdb.connect()
    con.execute("create table tilt_input (a integer, b integer)")
    con.executemany("insert into tilt_input values (?, ?)", counts)
    for a, b, favoured in con.execute(sql["tilt_probe"]).fetchall():
        assert favoured == position_tilt(a, b)[0], (a, b)
    # and the rule itself: a fair split is never a tilt, a lopsided one with enough verdicts always is
    assert position_tilt(200, 200)[0] == 0 and position_tilt(20, 0)[0] == 0 and position_tilt(60, 20)[0] == 1
    assert position_tilt(20, 60)[0] == 2
