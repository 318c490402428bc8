"""The run summary: how much of the dataset was kept, flipped and dropped, and why.

It reads the audit model (a model with `config(audit=true)` and `decision`/`reason` columns), prints a few
lines and writes target/summary.json and the table _prefclean.run_summaries. It also accounts for every
source row: rows_in (rows of the sources upstream of the audit model) = pairs + excluded rows, where excluded
rows are those of models with `config(excluded=true)` (a `reason` column; see prefclean/macros/rows.sql).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import duckdb

from .artifacts import write_json_atomic
from .errors import ProjectError
from .warehouse import META_SCHEMA, MODELS_SCHEMA, SOURCES_SCHEMA, model_relations, relation


class _Catalog:
    """Where the models stand and the columns of every relation, read once: the summary asked DuckDB's catalog
    ~20 times (an information_schema query each, ~1-2 ms), after the build's last model."""

    def __init__(self, con):
        self.places = model_relations(con)
        self.columns: dict[tuple[str, str], set[str]] = {}
        for schema, name, column in con.execute(
                "select schema_name, table_name, column_name from duckdb_columns() "
                "where database_name = current_database()").fetchall():  # tables and views
            self.columns.setdefault((schema, name), set()).add(column)

    def located(self, name: str) -> tuple[str, str] | None:
        """(schema, identifier) of a built model (its `schema`/`alias` config may move it from main), or None."""
        where = self.places.get(name, (MODELS_SCHEMA, name))
        return where if where in self.columns else None

    def columns_of(self, schema: str, name: str) -> set[str]:
        return self.columns.get((schema, name), set())


def _upstream(models: dict, name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for parent in models[todo.pop()].refs:
            if parent in models and parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def rows_accounting(con: duckdb.DuckDBPyConnection, audit_model: str, models: dict, pairs: int,
                    catalog: _Catalog | None = None) -> dict:
    """Where every source row went: {rows_in, sources, excluded: {reason: n}, excluded_models,
    [merged_duplicates], unaccounted}.

    unaccounted = rows_in - pairs - merged - sum(excluded): 0 when each source row is a pair, a repeat merged
    into a pair, or an excluded row."""
    catalog = catalog or _Catalog(con)
    lineage = _upstream(models, audit_model) | {audit_model}
    sources = sorted(set().union(*(models[m].sources for m in lineage)))
    counts = {s: con.execute(f"select count(*) from {relation(SOURCES_SCHEMA, s)}").fetchall()[0][0]
              for s in sources if catalog.columns_of(SOURCES_SCHEMA, s)}
    excluded: dict[str, int] = {}
    excluded_models = []
    for name, model in sorted(models.items()):
        if not model.config.get("excluded"):
            continue
        if not set().union(*(models[m].sources for m in _upstream(models, name) | {name})) & set(sources):
            continue  # the excluded rows of another source
        where = catalog.located(name)
        if where is None or "reason" not in catalog.columns_of(*where):
            continue
        excluded_models.append(name)
        for reason, n in con.execute(f"select coalesce(reason, 'unexplained'), count(*) from "
                                     f"{relation(*where)} group by 1 order by 2 desc, 1").fetchall():
            excluded[reason] = excluded.get(reason, 0) + n
    # A staging model may merge repeated rows into one pair instead of excluding them (a `source_rows` count
    # per pair, as `prefclean init` projects do): those rows are accounted for by their pair.
    merged = 0
    for name in sorted(lineage - {audit_model}):
        where = catalog.located(name)
        if where and "source_rows" in catalog.columns_of(*where):
            merged += con.execute(f"select coalesce(sum(source_rows) - count(*), 0) from "
                                  f"{relation(*where)}").fetchall()[0][0]
    rows_in = sum(counts.values())
    out = {"rows_in": rows_in, "sources": counts, "excluded": excluded, "excluded_models": excluded_models}
    if merged:
        out["merged_duplicates"] = int(merged)
    out["unaccounted"] = rows_in - pairs - int(merged) - sum(excluded.values())
    return out


#: Warn when more than this share of the pairs is dropped: PrefCleanBench's analysis found that removing much
#: more than ~30% of a preference dataset hurts the trained model. The `max_drop_rate` var overrides it.
DEFAULT_MAX_DROP_RATE = 0.3


def max_drop_rate(vars: dict) -> float:
    """The `max_drop_rate` var (a share between 0 and 1), or the default; a wrong value is one line."""
    value = vars.get("max_drop_rate")
    if value is None:
        return DEFAULT_MAX_DROP_RATE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ProjectError(f"var 'max_drop_rate' is {value!r}; it must be a share between 0 and 1 "
                           f"(e.g. 0.3 warns when more than 30% of the pairs are dropped)")
    return float(value)


#: Drop reasons of pairs that were not judged in this build; the next build judges them.
NOT_JUDGED_YET = ("not_judged_budget", "batch_pending")


def drop_warning(decisions: dict, reasons: list[dict], pairs: int, threshold: float) -> dict | None:
    """{rate, threshold, dropped, reasons: {reason: n}} when the dropped share passes the threshold."""
    dropped = decisions.get("drop", 0)
    if not pairs or dropped / pairs <= threshold:
        return None
    top = [r for r in reasons if r["decision"] == "drop"][:3]
    out = {"rate": round(dropped / pairs, 4), "threshold": threshold, "dropped": dropped,
           "reasons": {str(r["reason"]): r["pairs"] for r in top}}
    # pairs dropped only because they are not judged yet (a budget, a pending batch): not the cleaning's doing,
    # and the next build judges them, so the warning says so rather than only blaming the thresholds
    waiting = sum(r["pairs"] for r in reasons if r["decision"] == "drop" and r["reason"] in NOT_JUDGED_YET)
    if waiting:
        out["not_judged_yet"] = waiting
    return out


#: The tilt rule of the uncertain bias check (cleaning.sql position_tilt): at least this many decisive first
#: verdicts, and |z| above this, for a judge to count as favouring a position.
TILT_MIN_VERDICTS, TILT_Z = 30, 2.58


def position_tilt(first_wins: int, second_wins: int) -> tuple[int, float | None]:
    """(favoured position: 1, 2 or 0 for none, z) of decisive verdicts by winning position, as the SQL decides."""
    n = first_wins + second_wins
    z = (first_wins - second_wins) / n ** 0.5 if n else None
    if n < TILT_MIN_VERDICTS or abs(z) <= TILT_Z:
        return 0, z
    return (1 if first_wins > second_wins else 2), z


def uncertain_check(q, rel: str) -> dict:
    """What the uncertain check skipped, by reason, and the position tilt of the first passes it leant on
    (the panel's mean verdict per pair; the build decides per judge, on the rows judged so far)."""
    skipped = {r: int(n) for r, n in q(f"select bias_check, count(*) from {rel} where bias_check in "
                                       "('clear', 'would_drop', 'against_tilt') group by 1 order by 1")}
    first, second = q(f"select count(*) filter (where w = 1), count(*) filter (where w = 2) from (select case "
                      "when chosen_rating > rejected_rating then list_position(\"order\", 'chosen') "
                      "when rejected_rating > chosen_rating then list_position(\"order\", 'rejected') end as w "
                      f"from {rel})")[0]
    favoured, z = position_tilt(first, second)
    return {"skipped": skipped, "tilt": {"first_wins": first, "second_wins": second,
                                         "z": None if z is None else round(z, 2),
                                         "favours": {1: "first", 2: "second"}.get(favoured)}}


def _counts(con: duckdb.DuckDBPyConnection, rel: str, cols: set[str]) -> dict:
    """The audit table's figures the summary reports besides its decisions, by name, from one query (only
    those whose columns the table has)."""
    figures: dict[str, str] = {}
    if "majority_verdict" in cols:
        figures.update(judged="count(majority_verdict)",
                       **{name: f"count(*) filter (where majority_verdict = '{value}')"
                          for name, value in (("chosen", "chosen"), ("rejected", "rejected"), ("ties", "tie"))})
    if {"bias_checked", "position_flipped"} <= cols:
        # a pair counts as checked only when both passes were answered: one not sent (budget, a pending batch)
        # or failed was not checked, and its missing verdict is no flip
        answered = "bias_checked and not coalesce(failed, false)" if "failed" in cols else "bias_checked"
        figures.update(checked=f"count(*) filter (where {answered})",
                       flipped=f"count(*) filter (where {answered} and position_flipped)")
        if "bias_check_skipped" in cols:
            figures.update(skipped="count(*) filter (where bias_check_skipped)",
                           saved="coalesce(sum(judges) filter (where bias_check_skipped), 0)",
                           modes="count(bias_check_skipped)")
    if "escalated" in cols:
        figures["escalated"] = "count(*) filter (where escalated)"
    if "failed" in cols:
        unsent = " and not coalesce(not_judged, false)" if "not_judged" in cols else ""
        unsent += " and reason is distinct from 'batch_pending'"  # waiting in a provider batch: not failed
        figures["failures"] = f"count(*) filter (where (failed or failed is null){unsent})"
    if "not_judged" in cols:
        figures["not_judged"] = "count(*) filter (where not_judged)"
    if {"prompt_tokens", "completion_tokens"} <= cols:
        figures.update(prompt_tokens="coalesce(sum(prompt_tokens), 0)",
                       completion_tokens="coalesce(sum(completion_tokens), 0)")
    if not figures:
        return {}
    return dict(zip(figures, con.execute(f"select {', '.join(figures.values())} from {rel}").fetchall()[0]))


def compute_summary(con: duckdb.DuckDBPyConnection, audit_model: str, judging: dict | None = None,
                    models: dict | None = None, judges: dict | None = None,
                    drop_threshold: float = DEFAULT_MAX_DROP_RATE) -> dict | None:
    """`judging`: the build's judge counters; `judges`: each judge's, with its spending against its budget;
    `drop_threshold`: the dropped share above which the summary carries a `drop_warning`."""
    catalog = _Catalog(con)
    where = catalog.located(audit_model)
    if where is None:
        return None
    cols = catalog.columns_of(*where)
    if not {"decision", "reason"} <= cols:
        return None
    rel = relation(*where)
    q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    reasons = [{"decision": d, "reason": r, "pairs": n}
               for d, r, n in q(f"select decision, reason, count(*) from {rel} group by all order by 3 desc, 1, 2")]
    decisions: dict = {}
    for r in sorted(reasons, key=lambda r: (r["decision"] is None, r["decision"] or "")):  # (decision order)
        decisions[r["decision"]] = decisions.get(r["decision"], 0) + r["pairs"]
    pairs = sum(decisions.values())
    out = {"model": audit_model, "pairs": pairs, "decisions": decisions, "reasons": reasons}
    warning = drop_warning(decisions, reasons, pairs, drop_threshold)
    if warning:
        out["drop_warning"] = warning
    if models is not None and audit_model in models:
        out.update(rows_accounting(con, audit_model, models, pairs, catalog))
    counts = _counts(con, rel, cols)  # every other figure, in one scan
    if "majority_verdict" in cols:
        judged, chosen = counts["judged"], counts["chosen"]
        out["label_agreement"] = {
            "judged_pairs": judged,
            "judge_agrees_with_label": chosen,
            "judge_prefers_rejected": counts["rejected"],
            "ties": counts["ties"],
            "agreement_rate": round(chosen / judged, 4) if judged else None,
        }
    if {"bias_checked", "position_flipped"} <= cols:
        checked, flipped = counts["checked"], counts["flipped"]
        out["position_bias"] = {"checked": checked, "verdict_changed": flipped,
                                "rate": round(flipped / checked, 4) if checked else None}
        if "bias_check_skipped" in cols and counts["modes"]:  # NULL unless the bias check ran as 'uncertain'
            out["position_bias"].update({"not_rechecked": counts["skipped"],
                                         "swapped_requests_saved": int(counts["saved"])})
            if "bias_check" in cols:
                out["position_bias"].update(uncertain_check(q, rel))
    if "escalated" in cols and counts["escalated"]:
        out["escalated"] = counts["escalated"]  # pairs the stronger judge of an `escalate:` judged
    if "failed" in cols:
        out["judge_failures"] = counts["failures"]
    if "not_judged" in cols:
        out["not_judged_budget"] = counts["not_judged"]
    if {"prompt_tokens", "completion_tokens"} <= cols:
        out["tokens"] = {"prompt": int(counts["prompt_tokens"]), "completion": int(counts["completion_tokens"])}
    if judging:
        out["this_run"] = judging
    if judges:
        out["this_run_judges"] = judges
    return out


def format_summary(s: dict) -> list[str]:
    pct = lambda n: f"{100 * n / s['pairs']:.0f}%" if s["pairs"] else "-"  # noqa: E731
    d = s["decisions"]
    lines = [f"Summary ({s['model']}): {s['pairs']} pairs -> keep {d.get('keep', 0)} ({pct(d.get('keep', 0))}), "
             f"flip {d.get('flip', 0)} ({pct(d.get('flip', 0))}), drop {d.get('drop', 0)} ({pct(d.get('drop', 0))})"]
    for r in s["reasons"]:
        lines.append(f"  {str(r['decision']):<5} {str(r['reason']):<32} {r['pairs']}")  # NULLs print as None
    lines.extend(format_rows_accounting(s))
    dw = s.get("drop_warning")
    if dw:
        main = ", ".join(f"{reason} {n}" for reason, n in dw["reasons"].items())
        lines.append(f"  WARNING: {dw['dropped']} of {s['pairs']} pairs dropped ({100 * dw['rate']:.0f}%, above "
                     f"max_drop_rate {100 * dw['threshold']:.0f}%); mostly {main}. Removing much more than ~30% of "
                     "a preference dataset tends to hurt training: check the judge and the thresholds"
                     + (f"; {dw['not_judged_yet']} of them are only not judged yet (budget, a pending batch): the "
                        "next build judges them" if dw.get("not_judged_yet") else ""))
    la = s.get("label_agreement")
    if la and la["judged_pairs"]:
        lines.append(f"  judge agrees with the dataset's label on {la['judge_agrees_with_label']} of {la['judged_pairs']} "
                     f"judged pairs ({100 * la['agreement_rate']:.0f}%); prefers rejected on {la['judge_prefers_rejected']}; "
                     f"ties {la['ties']}")
    pb = s.get("position_bias")
    if pb and (pb["checked"] or pb.get("not_rechecked")):
        lines.append(f"  position bias: verdict changed on {pb['verdict_changed']} of {pb['checked']} swapped pairs "
                     + (f"({100 * pb['rate']:.0f}%)" if pb["rate"] is not None else "(none re-checked)")
                     + (f"; {pb['not_rechecked']} {_skipped(pb)} not re-checked ({pb['swapped_requests_saved']} "
                        "swapped requests saved)" if "not_rechecked" in pb else ""))
        tilt = pb.get("tilt")
        if tilt:
            lines.append(f"  position tilt of the first verdicts: {tilt['first_wins']} won in position 1, "
                         f"{tilt['second_wins']} in position 2"
                         + (f" (z {tilt['z']:+.2f})" if tilt["z"] is not None else "")
                         + (f": it favours the {tilt['favours']} position" if tilt["favours"] else ": no clear tilt"))
    if s.get("escalated"):
        lines.append(f"  escalated: {s['escalated']} pairs judged by the stronger judge (the first was unsure)")
    if "judge_failures" in s:
        lines.append(f"  judge failures: {s['judge_failures']}")
    cal = s.get("calibration")
    if cal:
        jh = cal["judge_vs_human"]
        kappa = "-" if jh["kappa"] is None else f"{jh['kappa']:.2f}"
        ci = f" (95% CI {jh['kappa_ci95'][0]:.2f} to {jh['kappa_ci95'][1]:.2f})" if jh["kappa_ci95"] else ""
        lines.append(f"  calibration: judge vs human on {jh['pairs']} reviewed pairs ({cal.get('sample', 'all')} "
                     f"sample), kappa {kappa}{ci}" + ("; too few to conclude" if cal["too_small"] else "")
                     + "; `prefclean calibrate` for the report")
    run = s.get("this_run")
    if run:
        lines.append(f"  this run: {run.get('requests', 0)} requests, {run.get('cached', 0)} cached rows, "
                     f"{run.get('failed', 0)} failed rows, {run.get('rate_limited', 0)} rate-limited, "
                     f"tokens {run.get('prompt_tokens', 0)}+{run.get('completion_tokens', 0)}"
                     + (f", ${run['cost_usd']:.4f}" if run.get("cost_usd") else ""))
        lines.extend(format_spending(s.get("this_run_judges") or {}))
        if s.get("not_judged_budget"):
            lines.append(f"  not judged (budget): {s['not_judged_budget']} pairs; the next build judges them")
    elif "tokens" in s:
        lines.append(f"  tokens: {s['tokens']['prompt']} prompt + {s['tokens']['completion']} completion")
    return lines


def _skipped(pb: dict) -> str:
    """'clear pairs' or, with the check on kept pairs, the pairs by why they were skipped."""
    skipped = pb.get("skipped") or {}
    if set(skipped) <= {"clear"}:
        return "clear pairs"
    names = {"clear": "clear", "would_drop": "dropped anyway", "against_tilt": "against the tilt"}
    return "pairs (" + ", ".join(f"{n} {names[r]}" for r, n in skipped.items()) + ")"


def format_spending(judges: dict) -> list[str]:
    """A line per judge with a price or a budget: what it spent, against what, and what the cache saved."""
    lines = []
    for name, j in judges.items():
        spent, budget = j["spent"], j.get("budget")
        if spent.get("cost_usd") is None and not budget:
            continue
        cost = f", ${spent['cost_usd']:.4f}" if spent.get("cost_usd") is not None else ""
        line = f"  judge {name}: spent {spent['requests']} requests, {spent['tokens']} tokens{cost}"
        if budget:
            line += " of budget " + ", ".join(f"{k} {v:g}" for k, v in budget.items())
        if j.get("stopped_by"):
            line += f" (stopped at {j['stopped_by']})"
        saved = j.get("saved_by_cache") or {}
        if saved.get("rows"):
            line += f"; the cache answered {saved['rows']} rows" + (
                f" (saved ~${saved['cost_usd']:.4f})" if saved.get("cost_usd") is not None else "")
        for key, what in (("held", "still in a batch, holding"), ("from_earlier_batches", "collected from earlier "
                                                                  "builds' batches, costing")):
            part = j.get(key)
            if part:
                line += f"; {part['requests']} requests {what} {part['tokens']} tokens" + (
                    f", ${part['cost_usd']:.4f}" if part.get("cost_usd") is not None else "")
        lines.append(line)
    return lines


def format_rows_accounting(s: dict) -> list[str]:
    if "rows_in" not in s:
        return []
    excluded = s["excluded"]
    shown = ", ".join(f"{reason} {n}" for reason, n in excluded.items())
    merged = f" + {s['merged_duplicates']} repeats merged into their pair" if s.get("merged_duplicates") else ""
    line = (f"  rows: {s['rows_in']} read from {', '.join(s['sources']) or 'no source'} = {s['pairs']} pairs{merged}"
            f" + {sum(excluded.values())} excluded" + (f" ({shown})" if shown else ""))
    if excluded and s["excluded_models"]:
        line += f"; list them: prefclean sql \"select * from {s['excluded_models'][0]}\""
    lines = [line]
    if s["unaccounted"]:
        lines.append(f"  WARNING: {s['unaccounted']} source rows are neither a pair nor an excluded row (rows_in - pairs"
                     " - merged - excluded): a model between the source and the audit table drops or repeats rows")
    return lines


def write_summary(con: duckdb.DuckDBPyConnection, target_dir, run_id: str, summary: dict) -> None:
    summary = {"run_id": run_id, "generated_at": datetime.now(timezone.utc).isoformat(), **summary}
    write_json_atomic(target_dir / "summary.json", summary)
    con.execute(f"insert into {META_SCHEMA}.run_summaries values (?, now(), ?)", [run_id, json.dumps(summary, default=str)])
