"""The `hub` export target: a model's table pushed to a Hugging Face dataset repo in one commit."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from .. import __version__
from ..errors import ExportError
from . import register_exporter
from .files import copy_to_file

THRESHOLD_VARS = ("min_margin", "poor_max", "min_agreement", "allow_flip", "drop_position_biased", "check_position_bias")


def _describe(con, rel: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"describe select * from {rel}").fetchall()]


def card_facts(con, project, export, rel: str) -> dict:
    """What the dataset card says: source, judges, task, decisions, thresholds, schema."""
    columns = [c for c, _ in _describe(con, rel)]
    judge_models: list[str] = []
    for col in ("judge_model", "judge_models"):
        if col in columns:
            judge_models = sorted({m for (v,) in con.execute(f"select distinct {col} from {rel} where {col} is not null").fetchall()
                                   for m in str(v).split(", ")})
            break
    decisions: dict[str, int] = {}
    summary_path = project.target_dir / "summary.json"
    if summary_path.exists():
        decisions = json.loads(summary_path.read_text()).get("decisions", {})
    elif "decision" in columns:
        decisions = dict(con.execute(f"select decision, count(*) from {rel} group by 1").fetchall())
    sources = [s for s in project.sources.values()]
    chosen = project.vars.get("source")
    source = next((s for s in sources if s.name == chosen), sources[0] if sources else None)
    return {
        "source_dataset": (source.path if source else None) or "unknown",
        "judge_models": judge_models,
        "task": export.options.get("task", "ultrafeedback"),
        "aspect": str(project.vars.get("aspect", "overall-rating")),
        "decision_counts": decisions,
        "thresholds": {k: project.vars[k] for k in THRESHOLD_VARS if k in project.vars},
        "schema": _describe(con, rel),
    }


@register_exporter("hub")
def export_hub(con, project, export, rel):
    from .hub import dataset_card, push_parquet_to_hub

    opts = export.options
    repo_id = opts.get("repo_id")
    if not repo_id or "/" not in str(repo_id):
        raise ExportError(f"export '{export.name}': set `repo_id: owner/name`")
    rows = con.execute(f"select count(*) from {rel}").fetchall()[0][0]
    shard_rows = int(opts.get("rows_per_shard", 500_000))
    shards = max(1, math.ceil(rows / shard_rows))
    split = opts.get("split", "train")
    config_name = opts.get("config_name", "default")
    order = "order by pair_id" if "pair_id" in [c for c, _ in _describe(con, rel)] else ""
    with tempfile.TemporaryDirectory(prefix="prefclean-hub-") as tmp:
        files = []
        for i in range(shards):
            path = Path(tmp) / f"{split}-{i:05d}-of-{shards:05d}.parquet"
            copy_to_file(con, f"select * from {rel} {order} limit {shard_rows} offset {i * shard_rows}", path,
                         "parquet", {"compression": "zstd"})
            files.append(path)
        facts = card_facts(con, project, export, rel)
        card = dataset_card(repo_id=repo_id, pretty_name=opts.get("pretty_name", f"{project.name}: {export.model}"),
                            config_name=config_name, split=split, num_rows=rows, prefclean_version=__version__,
                            license=opts.get("license"), **facts)
        try:
            result = push_parquet_to_hub(files, repo_id=repo_id, card_markdown=card, private=bool(opts.get("private", False)),
                                         revision=opts.get("revision", "main"), commit_message=opts.get("commit_message"),
                                         config_name=config_name, split=split)
        except Exception as exc:
            from .hub import HubExportError

            if isinstance(exc, HubExportError):
                raise ExportError(str(exc)) from None
            raise
    return f"{rows} rows of {export.model} -> hf://datasets/{repo_id}@{opts.get('revision', 'main')} ({shards} shard{'s' if shards > 1 else ''} + README.md)"
