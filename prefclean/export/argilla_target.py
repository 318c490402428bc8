"""The `argilla` export target (judged pairs for human review) and `prefclean pull argilla` (reviews back).

Options (under the export in prefclean.yml): dataset (default: the export's name), workspace (default
`argilla`, created when missing), api_url (or $ARGILLA_API_URL), api_key_env (the variable holding the key,
default ARGILLA_API_KEY), batch_size (records per request, default 200), query (what to select from the model;
{rel} is the model's relation), review / budget / calibration / calibration_seed (which pairs go, in which
queue: review_queue.py), min_submitted (Argilla's task distribution: submitted reviews per record).
"""

from __future__ import annotations

import os

from ..errors import ExportError
from ..warehouse import swap_in_table
from .review_queue import QueuePick, QueuePlan, pick

# From the audit table's columns to what the Argilla exporter expects: ratings and rationales in the order
# the judge saw the generations (the shuffled order), so reviewers see what the judge saw.
DEFAULT_QUERY = """
select pair_id, system, instruction, generations, "order",
  list_transform("order", lambda o: round(case when o = 'chosen' then chosen_rating else rejected_rating end)::integer) as ratings,
  list_transform("order", lambda o: case when o = 'chosen' then chosen_rationale else rejected_rationale end) as rationales,
  judge_models as judge_model, agreement::double as score, decision, reason, margin::double as margin
from {rel}
order by pair_id
"""
HUMAN_SCHEMA, HUMAN_TABLE = "human", "reviews"


def connection_settings(export) -> dict:
    opts = export.options
    api_url = opts.get("api_url") or os.environ.get("ARGILLA_API_URL")
    key_env = opts.get("api_key_env", "ARGILLA_API_KEY")
    api_key = os.environ.get(key_env)
    if not api_url:
        raise ExportError(f"export '{export.name}': no Argilla URL: set `api_url` or $ARGILLA_API_URL")
    if not api_key:
        raise ExportError(f"export '{export.name}': no Argilla API key: set ${key_env}")
    return {"dataset": opts.get("dataset", export.name), "workspace": opts.get("workspace", "argilla"),
            "api_url": api_url, "api_key": api_key}


def export_argilla(con, project, export, rel):
    from tqdm import tqdm

    from .argilla import ArgillaExportError, existing_queues, push_pairs
    from ..reporter import plain_lines, progress_enabled

    settings = connection_settings(export)
    query = (export.options.get("query") or DEFAULT_QUERY).format(rel=rel)
    plan = review_plan(export, project)
    try:
        existing = existing_queues(**settings)
    except ArgillaExportError as exc:
        raise ExportError(f"export '{export.name}': {exc}") from None
    try:
        picked = pick(con, rel, plan, existing)
    except ExportError as exc:
        raise ExportError(f"export '{export.name}': {exc}") from None
    con.register("review_queue", picked.table())
    try:
        table = con.sql(f"select q.*, r.queue, r.uncertainty from ({query}) q join review_queue r "
                        f"on r.pair_id = q.pair_id::varchar "
                        f"order by r.queue, r.uncertainty desc nulls last, q.pair_id").to_arrow_table()
    except Exception as exc:
        raise ExportError(f"export '{export.name}': cannot select the review columns from {export.model}: "
                          f"{' '.join(str(exc).split())}") from None
    finally:
        con.unregister("review_queue")
    label = f"argilla {settings['dataset']}"
    bar = tqdm(total=table.num_rows, desc=label, unit="record", disable=not progress_enabled())
    plain = plain_lines() if bar.disable else None  # stderr not a terminal: lines now and then instead
    done = [0]

    def progress(n):
        bar.update(n - done[0])
        done[0] = n
        if plain is not None:
            plain.update(label, n, table.num_rows, unit="records")

    try:
        result = push_pairs(table, progress=progress, batch_size=int(export.options.get("batch_size", 200)),
                            min_submitted=export.options.get("min_submitted"), **settings)
    except ArgillaExportError as exc:
        raise ExportError(f"export '{export.name}': {exc}") from None
    finally:
        bar.close()
    return (f"{result.get('records', table.num_rows)} records of {export.model} -> Argilla dataset "
            f"'{settings['dataset']}' in workspace '{settings['workspace']}' at {settings['api_url']}"
            + queue_summary(plan, picked))


def review_plan(export, project) -> QueuePlan:
    opts = export.options
    min_margin = project.vars.get("min_margin", 1)
    if isinstance(min_margin, bool) or not isinstance(min_margin, (int, float)):
        min_margin = 1
    return QueuePlan(review=opts.get("review", "all"), budget=opts.get("budget"),
                     calibration=int(opts.get("calibration", 0)), seed=int(opts.get("calibration_seed", 0)),
                     min_margin=float(min_margin))


def queue_summary(plan: QueuePlan, picked: QueuePick) -> str:
    """What the export line adds about the queues (nothing for a plain export without a calibration sample)."""
    parts = []
    if plan.review == "uncertain":
        parts.append(f"{picked.uncertain_new} uncertain (budget {plan.budget}; {picked.already_sent} already in "
                     f"the dataset, not sent again)")
    if plan.calibration:
        there = picked.calibration_there
        parts.append(f"{picked.calibration_new} calibration ({there + picked.calibration_new} of {plan.calibration} "
                     f"in the dataset)")
        if picked.calibration_shown:
            parts.append(f"{picked.calibration_shown} drawn for calibration were already sent with the judge's "
                         "suggestions and stay as they are")
    if parts and picked.not_judged:
        parts.append(f"{picked.not_judged} pairs without judge ratings not queued")
    return f": {'; '.join(parts)}" if parts else ""


def pull_reviews(con, project, export) -> dict[str, int]:
    """Every Argilla response (one row per record and reviewer: who, when, ratings, status, queue) -> table
    human.reviews. Returns the rows per status (submitted, draft, discarded)."""
    from .argilla import RESPONSE_STATUSES, ArgillaExportError, pull_responses

    settings = connection_settings(export)
    try:
        table = pull_responses(**settings)
    except ArgillaExportError as exc:
        raise ExportError(f"pull '{export.name}': {exc}") from None
    con.execute(f"create schema if not exists {HUMAN_SCHEMA}")
    con.register("pulled_reviews", table)
    try:
        swap_in_table(con, HUMAN_SCHEMA, HUMAN_TABLE, "select * from pulled_reviews")
    finally:
        con.unregister("pulled_reviews")
    counts = dict.fromkeys(RESPONSE_STATUSES, 0)
    for status in table.column("status").to_pylist():
        counts[status] += 1
    return counts
