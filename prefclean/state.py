"""dbt's `state:` selection: compare the project as it is now with a previous run's target/manifest.json.

A model is `state:new` when the saved manifest has no model of that name, and `state:modified` when it is new,
its body changed (the checksum of its compiled SQL: a changed macro or var that changes the SQL counts, as it
would change the table) or its config changed (materialized, unique_key and every config() / property-file /
prefclean.yml key). `state:modified.body` and `state:modified.configs` pick one of the two reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import GraphError, ProjectError

STATE_METHODS = ("new", "modified", "modified.body", "modified.configs")


def load_state(directory: str | Path | None) -> dict[str, dict[str, Any]] | None:
    """The models of DIR/manifest.json (name -> its manifest entry); None without --state."""
    if directory is None:
        return None
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise ProjectError(f"--state {directory}: no manifest.json there (point it at a previous run's target/ "
                           "folder, or a copy of it)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(f"--state {directory}: {path.name} cannot be read: {exc}") from None
    models = manifest.get("models") if isinstance(manifest, dict) else None
    if not isinstance(models, dict):
        raise ProjectError(f"--state {directory}: {path.name} is not a prefclean manifest (no models)")
    return models


def _config_of(model: Any) -> Any:
    # Through JSON, as the manifest stores it, so a tuple and a list (or a Path and a str) compare equal.
    return json.loads(json.dumps({"materialized": model.materialized, "unique_key": model.unique_key,
                                  "config": model.config}, default=str, sort_keys=True))


def _saved_config(entry: dict[str, Any]) -> Any:
    return json.loads(json.dumps({"materialized": entry.get("materialized"), "unique_key": entry.get("unique_key"),
                                  "config": entry.get("config")}, default=str, sort_keys=True))


def state_matches(models: dict[str, Any], state: dict[str, dict[str, Any]] | None, value: str, word: str,
                  flag: str) -> set[str]:
    if value not in STATE_METHODS:
        raise GraphError(f"{flag} '{word}': `state:{value}` is not supported by prefclean (known: "
                         + ", ".join(f"state:{m}" for m in STATE_METHODS) + ")")
    if state is None:
        raise GraphError(f"{flag} '{word}' needs --state DIR (a previous run's target/ folder, or a copy of it)")
    found = set()
    for name, model in models.items():
        saved = state.get(name)
        if saved is None:
            if value in ("new", "modified"):
                found.add(name)
            continue
        if value == "new":
            continue
        body = saved.get("checksum") != model.checksum
        configs = _saved_config(saved) != _config_of(model)
        if (value == "modified" and (body or configs) or value == "modified.body" and body
                or value == "modified.configs" and configs):
            found.add(name)
    return found
