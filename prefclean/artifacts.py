"""Run artifacts a user (or the dashboard) can open: target/manifest.json, target/run_results.json,
and the same run results as a table in the warehouse (`_prefclean.model_runs`)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from . import __version__
from .results import ModelRun
from .warehouse import META_SCHEMA


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, default=str)
    os.replace(tmp, path)


def remove_leftover_artifacts(target_dir: Path) -> list[Path]:
    """The temporary files write_json_atomic leaves when its process is killed (`summary.jsonXXXXXXXX.tmp`).
    Only for a build that holds the warehouse: no other build of the project is writing them."""
    if not target_dir.is_dir():
        return []
    pattern = re.compile(r"(manifest|run_results|summary)\.json[a-z0-9_]{8}\.tmp")
    removed = [p for p in target_dir.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def write_manifest(target_dir: Path, project, models: dict, graph, macros: dict[str, str] | None = None) -> None:
    """`macros`: name -> checksum of every macro (what state:modified.macros compares)."""
    from .state import source_checksum

    write_json_atomic(target_dir / "manifest.json", {
        "prefclean_version": __version__,
        "project": project.name,
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "sources": {n: {"type": s.type, "path": s.path, "columns": s.columns, "checksum": source_checksum(s)}
                    for n, s in project.sources.items()},
        "macros": {n: {"checksum": c} for n, c in sorted((macros or {}).items())},
        "models": {
            name: {
                "path": str(m.path),
                "materialized": m.materialized,
                "schema": m.schema, "alias": m.identifier, "relation_name": m.relation,  # dbt's names
                "unique_key": m.unique_key,
                "depends_on": {"models": sorted(m.refs), "sources": sorted(m.sources), "macros": sorted(m.macros)},
                "checksum": m.checksum,
                "config": m.config,
                "resource_type": m.resource_type,
                "description": m.description,  # from the property file (models/*.yml), as in dbt's manifest
                "columns": m.columns,
            }
            for name, m in models.items()
        },
        "order": graph.order(),
    })


def write_run_results(target_dir: Path, run_id: str, command: str, results: list[ModelRun], elapsed: float,
                      extra: dict | None = None) -> None:
    write_json_atomic(target_dir / "run_results.json", {
        "prefclean_version": __version__,
        "run_id": run_id,
        "command": command,
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "elapsed_seconds": round(elapsed, 3),
        "results": [r.artifact() for r in results],
        **(extra or {}),
    })


def record_run(con: duckdb.DuckDBPyConnection, run_id: str, results: list[ModelRun]) -> None:
    """One row per model, in one statement: one commit (a WAL fsync each: on a disk busy with other writes, tens
    of milliseconds apiece), not one per model."""
    if not results:
        return
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, now())"] * len(results))
    con.execute(f"insert into {META_SCHEMA}.model_runs values {rows}",
                [v for r in results for v in (run_id, r.name, r.status, r.materialized, r.rows, r.seconds,
                                              r.error or "")])
