"""The `argilla` export target (judged pairs for human review) and `prefclean pull argilla` (reviews back).

Options (under the export in prefclean.yml): dataset (default: the export's name), workspace (default
`argilla`, created when missing), api_url (or $ARGILLA_API_URL), api_key_env (the variable holding the key,
default ARGILLA_API_KEY), batch_size (records per request, default 200), query (what to select from the model;
{rel} is the model's relation).
"""

from __future__ import annotations

import os

from ..errors import ExportError
from ..warehouse import swap_in_table

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

    from .argilla import ArgillaExportError, push_pairs
    from ..reporter import plain_lines, progress_enabled

    settings = connection_settings(export)
    query = (export.options.get("query") or DEFAULT_QUERY).format(rel=rel)
    try:
        table = con.sql(query).to_arrow_table()
    except Exception as exc:
        raise ExportError(f"export '{export.name}': cannot select the review columns from {export.model}: "
                          f"{' '.join(str(exc).split())}") from None
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
        result = push_pairs(table, progress=progress, batch_size=int(export.options.get("batch_size", 200)), **settings)
    except ArgillaExportError as exc:
        raise ExportError(f"export '{export.name}': {exc}") from None
    finally:
        bar.close()
    return (f"{result.get('records', table.num_rows)} records of {export.model} -> Argilla dataset "
            f"'{settings['dataset']}' in workspace '{settings['workspace']}' at {settings['api_url']}")


def pull_reviews(con, project, export) -> int:
    """Submitted Argilla responses -> table human.reviews (pair_id, ratings, ...). Returns the row count."""
    from .argilla import ArgillaExportError, pull_responses

    settings = connection_settings(export)
    try:
        table = pull_responses(**settings)
    except ArgillaExportError as exc:
        raise ExportError(f"pull '{export.name}': {exc}") from None
    con.execute(f"create schema if not exists {HUMAN_SCHEMA}")
    con.register("pulled_reviews", table)
    try:
        return swap_in_table(con, HUMAN_SCHEMA, HUMAN_TABLE, "select * from pulled_reviews")
    finally:
        con.unregister("pulled_reviews")
