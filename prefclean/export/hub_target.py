"""The `hub` export target: a model's table pushed to a Hugging Face dataset repo in one commit.

Options (under the export in prefclean.yml): repo_id (required), private, revision (a branch; created from main
when missing), commit_message, config_name, split, license, pretty_name, task, rows_per_shard,
audit_model (where the card's decision counts come from).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path

from .. import __version__
from ..errors import ExportError
from ..summary import compute_summary
from ..warehouse import MODELS_SCHEMA
from .files import copy_to_file

THRESHOLD_VARS = ("min_margin", "poor_max", "min_agreement", "allow_flip", "drop_position_biased", "check_position_bias",
                  "bias_check_margin", "bias_check_direction")
ROW_NUMBER = "__prefclean_row"


def _describe(con, rel: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"describe select * from {rel}").fetchall()]


def _judge_models(con, project, rel: str, columns: list[str]) -> list[str]:
    """The judges named in the data (judge_model column) or, failing that, the panel in the project vars."""
    for col in ("judge_model", "judge_models"):
        if col in columns:
            found: set[str] = set()
            for (value,) in con.execute(f"select distinct {col} from {rel} where {col} is not null").fetchall():
                found.update(map(str, value) if isinstance(value, list) else str(value).split(", "))
            return sorted(found)
    panel = project.vars.get("judges") or []
    return [project.judges[n].model or n for n in panel if n in project.judges]


def _decisions(con, project, export, rel: str, columns: list[str]) -> dict[str, int]:
    """Keep/flip/drop counts from the audit model as it is now (`audit_model` option, or the one model with
    `decision` and `reason` columns); else target/summary.json; else the exported table's own `decision` column.
    The warehouse comes first because `build` runs exports before it rewrites summary.json."""
    audit = export.options.get("audit_model")
    candidates = [audit] if audit else [name for (name,) in con.execute(
        "select table_name from information_schema.columns where table_schema = ? and table_catalog = current_database() "
        "and column_name in ('decision', 'reason') group by 1 having count(*) = 2", [MODELS_SCHEMA]).fetchall()]
    if len(candidates) == 1:
        summary = compute_summary(con, candidates[0])
        if summary:
            return summary["decisions"]
    summary_path = project.target_dir / "summary.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text()).get("decisions", {})
    if "decision" in columns:
        return dict(con.execute(f"select decision, count(*) from {rel} group by 1 order by 1").fetchall())
    return {}


def card_facts(con, project, export, rel: str) -> dict:
    """What the dataset card says: source, judges, task, decisions, thresholds, schema."""
    schema = _describe(con, rel)
    columns = [c for c, _ in schema]
    decisions = _decisions(con, project, export, rel, columns)
    sources = list(project.sources.values())
    chosen = project.vars.get("source")
    source = next((s for s in sources if s.name == chosen), sources[0] if sources else None)
    return {
        "source_dataset": (source.path if source else None) or (source.name if source else "unknown"),
        "source_is_hub": bool(source and source.type == "huggingface"),
        "model": export.model,
        "judge_models": _judge_models(con, project, rel, columns),
        "task": str(export.options.get("task") or project.vars.get("task") or "ultrafeedback"),
        "aspect": str(project.vars.get("aspect", "overall-rating")),
        "decision_counts": decisions,
        "thresholds": {k: project.vars[k] for k in THRESHOLD_VARS if k in project.vars},
        "schema": schema,
    }


def write_shards(con, rel: str, directory: Path, rows: int, rows_per_shard: int) -> list[Path]:
    """Parquet shards (zstd) by DuckDB. Rows are numbered once, so the shards split the table exactly."""
    count = max(1, math.ceil(rows / rows_per_shard))
    order = "order by pair_id" if "pair_id" in [c for c, _ in _describe(con, rel)] else ""
    staged = "_prefclean_hub_export"
    con.execute(f"create or replace temp table {staged} as "
                f"select row_number() over ({order}) - 1 as {ROW_NUMBER}, * from {rel}")
    try:
        paths = []
        for i in range(count):
            path = directory / f"shard-{i:05d}.parquet"
            copy_to_file(con, f"select * exclude ({ROW_NUMBER}) from {staged} where {ROW_NUMBER} >= {i * rows_per_shard} "
                              f"and {ROW_NUMBER} < {(i + 1) * rows_per_shard} order by {ROW_NUMBER}",
                         path, "parquet", {"compression": "zstd"})
            paths.append(path)
        return paths
    finally:
        con.execute(f"drop table if exists {staged}")


# What `datasets` accepts: split names are words (dots between), "all" is reserved; config names become folders.
_NAME_RULES = {"split": (r"\w+(\.\w+)*", "a word like train or test"), "config_name": (r"\w[\w\-.]*", "a plain name")}


def _option(export, key: str, default: str) -> str:
    value = str(export.options.get(key, default))
    pattern, what = _NAME_RULES[key]
    if not re.fullmatch(pattern, value) or (key == "split" and value == "all"):
        raise ExportError(f"export '{export.name}': `{key}` must be {what}, not '{value}'")
    return value


def _branch(export) -> str:
    """The branch to push to. Checked here so that a bad name fails before the repo is even created."""
    value = str(export.options.get("revision") or "main")
    if (value.startswith(("refs/", "/", "-", ".")) or value.endswith(("/", ".lock")) or ".." in value
            or not re.fullmatch(r"[\w.\-/]+", value) or re.fullmatch(r"[0-9a-f]{40}", value)):
        raise ExportError(f"export '{export.name}': `revision` must be a branch name (like main or cleaned-v2), "
                          f"not '{value}'")
    return value


def export_hub(con, project, export, rel):
    from .hub import dataset_card, push_parquet_to_hub

    opts = export.options
    repo_id = str(opts.get("repo_id") or "")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ExportError(f"export '{export.name}': set `repo_id: owner/name` (got '{repo_id}')")
    split, config_name = _option(export, "split", "train"), _option(export, "config_name", "default")
    revision = _branch(export)
    rows_per_shard = opts.get("rows_per_shard", 500_000)
    if not isinstance(rows_per_shard, int) or isinstance(rows_per_shard, bool) or rows_per_shard < 1:
        raise ExportError(f"export '{export.name}': `rows_per_shard` must be a whole number of at least 1")
    from .files import JUDGMENT_COLUMN, rows_select

    if JUDGMENT_COLUMN in [c for c, _ in _describe(con, rel)]:  # rows in their own format: judgments on request
        con.execute(f"create or replace temp view _prefclean_hub_rows as "
                    f"{rows_select(con, rel, opts.get('with_judgments', False))}")
        rel = "_prefclean_hub_rows"
    rows = con.execute(f"select count(*) from {rel}").fetchall()[0][0]
    facts = card_facts(con, project, export, rel)
    card = dataset_card(repo_id=repo_id, pretty_name=str(opts.get("pretty_name", f"{project.name}: {export.model}")),
                        config_name=config_name, split=split, num_rows=rows, prefclean_version=__version__,
                        license=opts.get("license"), **facts)
    with tempfile.TemporaryDirectory(prefix="prefclean-hub-") as tmp:
        shards = write_shards(con, rel, Path(tmp), rows, rows_per_shard)
        pushed = push_parquet_to_hub(shards, repo_id=repo_id, card_markdown=card, private=bool(opts.get("private", False)),
                                     revision=revision, commit_message=opts.get("commit_message"),
                                     config_name=config_name, split=split)
    n = len(shards)
    commit = f"commit {pushed['oid'][:8]}" if pushed["changed"] else f"unchanged, already at commit {pushed['oid'][:8]}"
    return (f"{rows} rows of {export.model} -> hf://datasets/{repo_id}@{revision} config {config_name} split {split} "
            f"({n} shard{'s' if n > 1 else ''} + README.md, {commit})")
