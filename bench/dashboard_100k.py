"""How fast the dashboard answers on 100k pairs: first render of each page and filtered table queries.

Synthesizes a warehouse shaped like the example project's models (pair_decisions, pair_ratings for a panel of
two judges, cleaned_pairs, plus target/manifest.json and run_results.json), starts `prefclean dashboard` as a
subprocess and times HTTP requests (server render + transfer; no browser).

    python bench/dashboard_100k.py [--pairs 100000] [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import duckdb

TEXT = "repeat(md5(i::varchar || '{salt}'), {n})"


def synthesize(root: Path, pairs: int) -> None:
    (root / "prefclean.yml").write_text("name: bench_dashboard\n")
    target = root / "target"
    target.mkdir()
    con = duckdb.connect(str(target / "prefclean.duckdb"))
    con.execute("create schema _prefclean")
    con.execute(f"""
        create table pair_ratings as
        with base as (
          select i, md5(i::varchar) as pair_id, j.judge,
                 1 + (hash(i, j.judge, 'c') % 5)::int as chosen_rating,
                 1 + (hash(i, j.judge, 'r') % 5)::int as rejected_rating
          from range({pairs}) t(i), (values ('alpha'), ('beta')) j(judge))
        select pair_id, judge, 'model-' || judge as judge_model, chosen_rating, rejected_rating,
               'The chosen answer earns ' || chosen_rating || ' because ' || {TEXT.format(salt='cr', n=3)} as chosen_rationale,
               'The rejected answer earns ' || rejected_rating || ' because ' || {TEXT.format(salt='rr', n=3)} as rejected_rationale,
               case when i % 10 = 0 then rejected_rating else chosen_rating end as chosen_rating_swapped,
               case when i % 10 = 0 then chosen_rating else rejected_rating end as rejected_rating_swapped,
               true as bias_checked, case when i % 97 = 0 then 'unparseable answer' end as error,
               null::varchar as swapped_error,
               '#### Output for Text 1' || chr(10) || 'Rating: ' || chosen_rating as raw, false as cached,
               900 as prompt_tokens, 120 as completion_tokens, 800 + i % 400 as latency_ms
        from base""")
    con.execute(f"""
        create table pair_decisions as
        with panel as (
          select pair_id, avg(chosen_rating) as chosen_rating, avg(rejected_rating) as rejected_rating,
                 bool_or(error is not null) as failed,
                 bool_or(sign(chosen_rating - rejected_rating) <> sign(chosen_rating_swapped - rejected_rating_swapped)) as position_flipped,
                 count(distinct sign(chosen_rating - rejected_rating)) = 1 as agree,
                 any_value(chosen_rationale) as chosen_rationale, any_value(rejected_rationale) as rejected_rationale,
                 avg(chosen_rating) - avg(rejected_rating) as margin, list(raw order by judge) as raw_answers, sum(prompt_tokens) as prompt_tokens,
                 sum(completion_tokens) as completion_tokens
          from pair_ratings group by pair_id)
        select md5(i::varchar) as pair_id, '' as system,
               'Question ' || i || case when i % 100 = 0 then ' about a needle' else '' end || ': '
                 || {TEXT.format(salt='q', n=8)} as instruction,
               'Chosen: ' || {TEXT.format(salt='c', n=30)} as chosen,
               'Rejected: ' || {TEXT.format(salt='r', n=30)} as rejected,
               [chosen, rejected] as generations, ['chosen', 'rejected'] as "order",
               2 as judges, 'model-alpha, model-beta' as judge_models, p.chosen_rating, p.rejected_rating,
               p.margin,
               case when p.chosen_rating > p.rejected_rating then 'chosen' when p.chosen_rating < p.rejected_rating
                    then 'rejected' else 'tie' end as majority_verdict,
               case when p.agree then 1.0 else 0.5 end as agreement, p.failed, p.position_flipped,
               true as bias_checked, p.chosen_rationale, p.rejected_rationale, p.raw_answers,
               null::varchar[] as errors, p.prompt_tokens, p.completion_tokens,
               null::integer as human_chosen, null::integer as human_rejected,
               case when p.failed then 'drop' when not p.agree then 'drop' when p.position_flipped then 'drop'
                    when greatest(p.chosen_rating, p.rejected_rating) <= 2 then 'drop'
                    when abs(p.margin) < 1 then 'drop' when p.margin < 0 then 'drop' else 'keep' end as decision,
               case when p.failed then 'judge_failed' when not p.agree then 'judges_disagree'
                    when p.position_flipped then 'position_bias' when greatest(p.chosen_rating, p.rejected_rating) <= 2
                    then 'both_poor' when abs(p.margin) < 1 then 'tie' when p.margin < 0 then 'judge_prefers_rejected'
                    else 'judge_agrees' end as reason
        from range({pairs}) t(i) join panel p on p.pair_id = md5(i::varchar)""")
    con.execute("create table cleaned_pairs as select pair_id, system, instruction as prompt, chosen, rejected, "
                "chosen_rating, rejected_rating, decision from pair_decisions where decision = 'keep'")
    counts = {name: con.execute(f"select count(*) from {name}").fetchone()[0]
              for name in ("pair_ratings", "pair_decisions", "cleaned_pairs")}
    con.close()
    deps = {"pair_ratings": [], "pair_decisions": ["pair_ratings"], "cleaned_pairs": ["pair_decisions"]}
    (target / "manifest.json").write_text(json.dumps({"models": {
        name: {"materialized": "table", "depends_on": {"models": d, "sources": []},
               "config": {"audit": name == "pair_decisions"}} for name, d in deps.items()},
        "order": list(deps)}))
    (target / "run_results.json").write_text(json.dumps({
        "run_id": "bench", "command": "build", "generated_at": "now", "elapsed_seconds": 1.0,
        "results": [{"model": n, "status": "success", "materialized": "table", "rows": c, "seconds": 0.1}
                    for n, c in counts.items()]}))


def timed(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as resp:
        body = resp.read()
        assert resp.status == 200, url
    return time.perf_counter() - start, len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="Build the warehouse here and keep it.")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="dashboard_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    synthesize(root, args.pairs)
    print(f"synthesized {args.pairs:,} pairs in {time.perf_counter() - start:.1f}s under {root}")
    process = subprocess.Popen([sys.executable, "-m", "prefclean.cli", "dashboard", "--port", "0", "--project-dir",
                                str(root)], stdout=subprocess.PIPE, text=True)
    try:
        base = re.search(r"http://\S+/", process.stdout.readline()).group(0)
        with urllib.request.urlopen(base + "pairs?limit=1") as resp:
            pair_id = re.search(r'href="/pairs/([0-9a-f]+)"', resp.read().decode()).group(1)
        last = duckdb.connect(str(root / "target" / "prefclean.duckdb"), read_only=True).execute(
            "select pair_id from pair_decisions order by pair_id desc limit 1 offset 60").fetchone()[0]
        cases = {
            "overview": "", "charts": "charts", "pairs (first page)": "pairs", "pair view": f"pairs/{pair_id}",
            "lineage": "lineage", "sql select": None,
            "filter decision=keep": "pairs?decision=keep",
            "filter judge=beta, chosen>=4, margin>=2": "pairs?judge=beta&chosen_min=4&margin_min=2",
            "filter text 'needle'": "pairs?q=needle",
            "filter reason + deep page": "pairs?" + urllib.parse.urlencode({"reason": "judges_disagree", "after": last}),
        }
        print(f"{'request':<42} {'first':>8} {'median':>8} {'bytes':>9}")
        for name, path in cases.items():
            url = base + (path if path is not None else "sql?q=x")
            if path is None:  # the SQL box posts; time it with a form body
                def once():
                    data = urllib.parse.urlencode({"q": "select decision, reason, count(*) from pair_decisions group by all"}).encode()
                    t = time.perf_counter()
                    with urllib.request.urlopen(urllib.request.Request(base + "sql", data=data), timeout=120) as resp:
                        n = len(resp.read())
                    return time.perf_counter() - t, n
            else:
                once = lambda url=url: timed(url)  # noqa: E731
            first, size = once()
            rest = [once()[0] for _ in range(args.repeat)]
            print(f"{name:<42} {first * 1000:7.0f}ms {statistics.median(rest) * 1000:7.0f}ms {size:>9,}")
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    main()
