"""dbt's `state:` selection: compare the project as it is now with a previous run's target/manifest.json.

- `state:new`: the saved manifest has no model (or seed) of that name; `state:old`: it has one.
- `state:modified`: new, or any of the reasons below; `state:unmodified`: old and none of them.
- `state:modified.body`: the checksum of its compiled SQL changed (a changed macro or var that changes the SQL
  counts, as it changes the table), or for a seed its file's contents.
- `state:modified.configs`: materialized, unique_key or any config() / property-file / prefclean.yml key.
- `state:modified.relation`: the schema or alias it is built under (also a config change).
- `state:modified.macros`: a macro it calls (directly or through other macros) changed, or is gone.
- `state:modified.contract`: its contract config, or (under an enforced contract) a column's name or data_type.
- `state:modified.persisted_descriptions`: with `persist_docs`, its description or a column's changed.
- `state:modified.sources`: the definition of a source it reads changed in prefclean.yml. prefclean has no source
  nodes to select (dbt selects the source itself); the models reading it stand in, and `state:modified` has them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import GraphError, ProjectError

STATE_METHODS = ("new", "old", "modified", "unmodified", "modified.body", "modified.configs", "modified.relation",
                 "modified.macros", "modified.sources", "modified.persisted_descriptions", "modified.contract")
# dbt's, for what prefclean does differently: refused by name.
UNSUPPORTED_STATE = {"modified.vars": "a var change that changes a model's SQL is state:modified.body"}

_MACRO_BLOCK = re.compile(r"\{%-?\s*macro\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(.*?\{%-?\s*endmacro\b[^%]*%\}", re.S)


def macro_checksums(text: str) -> dict[str, str]:
    """Each macro's checksum, from its own block of the file (a change to another macro there changes none)."""
    return {m.group(1): hashlib.sha256(m.group(0).encode()).hexdigest() for m in _MACRO_BLOCK.finditer(text)}


def source_checksum(source: Any) -> str:
    """A source's definition in prefclean.yml (every key, as validated), hashed: only the hash is kept, so
    nothing of the definition (a token in an option, say) reaches the manifest."""
    data = source.model_dump(mode="json") if hasattr(source, "model_dump") else source
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class SavedState:
    """A previous manifest, and what the project has now to compare with it (set by `compare_with`)."""

    models: dict[str, dict[str, Any]]
    macros: dict[str, str]  # name -> checksum; {} for a manifest from before macros were recorded
    sources: dict[str, str | None]  # name -> checksum (None: not recorded)
    now_macros: dict[str, str] = field(default_factory=dict)
    now_sources: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> dict[str, Any] | None:
        return self.models.get(name)

    def compare_with(self, macros: dict[str, str], sources: dict[str, Any]) -> "SavedState":
        self.now_macros = dict(macros)
        self.now_sources = {n: source_checksum(s) for n, s in sources.items()}
        return self


def load_state(directory: str | Path | None) -> SavedState | None:
    """DIR/manifest.json's models, macros and sources; None without --state."""
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
    macros = {n: m.get("checksum") for n, m in (manifest.get("macros") or {}).items() if isinstance(m, dict)}
    sources = {n: s.get("checksum") for n, s in (manifest.get("sources") or {}).items() if isinstance(s, dict)}
    return SavedState(models, macros, sources)


def _config_of(model: Any) -> Any:
    # Through JSON, as the manifest stores it, so a tuple and a list (or a Path and a str) compare equal.
    return json.loads(json.dumps({"materialized": model.materialized, "unique_key": model.unique_key,
                                  "config": model.config}, default=str, sort_keys=True))


def _saved_config(entry: dict[str, Any]) -> Any:
    return json.loads(json.dumps({"materialized": entry.get("materialized"), "unique_key": entry.get("unique_key"),
                                  "config": entry.get("config")}, default=str, sort_keys=True))


def _reasons(model: Any, saved: dict[str, Any], state: SavedState) -> set[str]:
    """Why `model` differs from its saved entry: body, configs, relation, macros, sources."""
    out = set()
    if saved.get("checksum") != model.checksum:
        out.add("body")
    if _saved_config(saved) != _config_of(model):
        out.add("configs")
    if "schema" in saved and (saved.get("schema"), saved.get("alias")) != (model.schema, model.identifier):
        out.add("relation")
    called = (saved.get("depends_on") or {}).get("macros")
    if state.macros and called is not None and any(
            state.macros.get(m) != state.now_macros.get(m) for m in set(called) | model.macros):
        out.add("macros")
    saved_config = saved.get("config") or {}
    if saved_config.get("contract") != model.config.get("contract") or (model.config.get("contract") or {}).get(
            "enforced") and {c: p.get("data_type") for c, p in (saved.get("columns") or {}).items()} != {
            c: p.get("data_type") for c, p in model.columns.items()}:
        out.add("contract")
    docs = model.config.get("persist_docs") or {}
    if docs.get("relation") and saved.get("description", "") != model.description or docs.get("columns") and {
            c: p.get("description", "") for c, p in (saved.get("columns") or {}).items()} != {
            c: p.get("description", "") for c, p in model.columns.items()}:
        out.add("persisted_descriptions")
    if any(state.sources.get(s) is not None and state.sources.get(s) != state.now_sources.get(s)
           for s in model.sources):
        out.add("sources")
    return out


def state_matches(models: dict[str, Any], state: SavedState | None, value: str, word: str, flag: str) -> set[str]:
    if value in UNSUPPORTED_STATE:
        raise GraphError(f"{flag} '{word}': `state:{value}` is not supported by prefclean ({UNSUPPORTED_STATE[value]})")
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
        if value == "old":
            found.add(name)
        elif value in ("modified", "unmodified"):
            if bool(_reasons(model, saved, state)) == (value == "modified"):
                found.add(name)
        elif value.startswith("modified.") and value.split(".", 1)[1] in _reasons(model, saved, state):
            found.add(name)
    return found
