"""A model's config, as dbt merges it: the model's own config() over its property file's `config:`.

Every key either does something in prefclean or is an error naming it ("`partition_by` is not supported by
prefclean"): a dbt user never finds out later that a key did nothing.
"""

from __future__ import annotations

import difflib
from typing import Any

from .errors import CompileError

# dbt's keys that prefclean does, then prefclean's own: `audit` (the run summary reads this model), `excluded`
# (its rows are counted as excluded, by reason), `source_columns` (checked against the sources it reads).
# A new key that code reads goes here, or every model that sets it is refused.
MODEL_CONFIG_KEYS = ("materialized", "unique_key", "on_schema_change", "incremental_strategy", "full_refresh",
                     "enabled", "tags", "meta", "pre_hook", "post_hook", "audit", "excluded", "source_columns")
SEED_CONFIG_KEYS = ("column_types", "delimiter", "enabled", "tags", "meta", "full_refresh")
# dbt config keys that prefclean knows and does not do; each is refused by name.
UNSUPPORTED_CONFIG = {
    "alias": " (a model's relation is its file name)", "schema": " (every model is in the schema main)",
    "database": " (every model is in the project's warehouse)", "partition_by": "", "cluster_by": "",
    "contract": "", "constraints": "", "grants": "", "persist_docs": "", "sql_header": "",
    "incremental_predicates": "", "merge_update_columns": "", "merge_exclude_columns": "", "group": "",
    "access": "", "on_configuration_change": "", "indexes": "", "location": "", "format": "", "options": "",
    "strategy": " (snapshots are not supported)", "updated_at": " (snapshots are not supported)",
    "check_cols": " (snapshots are not supported)", "target_schema": "", "quote_columns": "", "snapshot_meta_column_names": "",
    "batch_size": "", "lookback": "", "event_time": "", "begin": "", "plugin": "", "glue_register": "",
    "docs": " (there is no docs site)",
}
INCREMENTAL_STRATEGIES = ("delete+insert", "append")
ADDITIVE = ("tags",)  # dbt adds tags up across levels instead of replacing them


def normalize(config: dict[str, Any]) -> dict[str, Any]:
    """`pre-hook` (YAML) and `pre_hook` (config()) are the same key."""
    return {key.replace("-", "_") if key in ("pre-hook", "post-hook") else key: value for key, value in config.items()}


def as_list(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def merge(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in normalize(more).items():
        if key in ADDITIVE and key in out:
            out[key] = list(dict.fromkeys(as_list(out[key]) + as_list(value)))
        else:
            out[key] = value
    return out


def check(owner: str, config: dict[str, Any], kind: str = "model") -> None:
    """Raise CompileError naming the first key that prefclean does not do."""
    known = SEED_CONFIG_KEYS if kind == "seed" else MODEL_CONFIG_KEYS
    for key in config:
        if key in known:
            continue
        if key in UNSUPPORTED_CONFIG or key in MODEL_CONFIG_KEYS + SEED_CONFIG_KEYS:
            why = UNSUPPORTED_CONFIG.get(key, f" on a {kind}")
            raise CompileError(f"{owner}: `{key}` is not supported by prefclean{why}")
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
        raise CompileError(f"{owner}: unknown config `{key}`" + (f"; did you mean `{close[0]}`?" if close else
                                                               f" (known: {', '.join(known)})"))
    if kind == "seed":
        types = config.get("column_types") or {}
        if not isinstance(types, dict) or not all(isinstance(v, str) for v in types.values()):
            raise CompileError(f"{owner}: `column_types` should map column names to DuckDB types")
        return
    strategy = config.get("incremental_strategy")
    if strategy is not None:
        if strategy not in INCREMENTAL_STRATEGIES:
            raise CompileError(f"{owner}: incremental_strategy='{strategy}' is not supported by prefclean (one of "
                               f"{', '.join(INCREMENTAL_STRATEGIES)}: delete+insert on unique_key, or append)")
        if (strategy == "append") == bool(config.get("unique_key")):
            raise CompileError(f"{owner}: incremental_strategy='{strategy}' " + (
                "appends rows; it takes no unique_key" if strategy == "append" else "needs a unique_key"))
    for hook in ("pre_hook", "post_hook"):
        if not all(isinstance(h, str) for h in as_list(config.get(hook))):
            raise CompileError(f"{owner}: `{hook}` should be SQL, or a list of SQL statements")
