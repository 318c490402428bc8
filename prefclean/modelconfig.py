"""A model's config, as dbt merges it: the model's own config() over its property file's `config:`.

Every key either does something in prefclean or is an error naming it ("`partition_by` is not supported by
prefclean"): a dbt user never finds out later that a key did nothing.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from .errors import CompileError

# dbt's keys that prefclean does, then prefclean's own: `audit` (the run summary reads this model), `excluded`
# (its rows are counted as excluded, by reason), `source_columns` (checked against the sources it reads).
# A new key that code reads goes here, or every model that sets it is refused.
MODEL_CONFIG_KEYS = ("materialized", "unique_key", "on_schema_change", "incremental_strategy", "full_refresh",
                     "enabled", "tags", "meta", "pre_hook", "post_hook", "schema", "alias", "persist_docs", "contract", "audit",
                     "excluded", "source_columns")
SEED_CONFIG_KEYS = ("column_types", "delimiter", "enabled", "tags", "meta", "full_refresh", "schema", "alias",
                    "persist_docs")
# dbt config keys that prefclean knows and does not do; each is refused by name.
UNSUPPORTED_CONFIG = {
    "database": " (every model is in the project's warehouse)", "partition_by": "", "cluster_by": "",
    "constraints": "", "quoting": "", "grants": "", "sql_header": "",
    "incremental_predicates": "", "merge_update_columns": "", "merge_exclude_columns": "", "group": "",
    "access": "", "on_configuration_change": "", "indexes": "", "location": "", "format": "", "options": "",
    "strategy": " (snapshots are not supported)", "updated_at": " (snapshots are not supported)",
    "check_cols": " (snapshots are not supported)", "target_schema": "", "quote_columns": "", "snapshot_meta_column_names": "",
    "batch_size": "", "lookback": "", "event_time": "", "begin": "", "plugin": "", "glue_register": "",
    "docs": " (there is no docs site)",
}
INCREMENTAL_STRATEGIES = ("delete+insert", "append")
ADDITIVE = ("tags",)  # dbt adds tags up across levels instead of replacing them
HOOKS = ("pre_hook", "post_hook")  # and runs the hooks of every level, the folder's first


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
        elif key in HOOKS and key in out:
            out[key] = as_list(out[key]) + as_list(value)
        else:
            out[key] = value
    return out


def check(owner: str, config: dict[str, Any], kind: str = "model", *, partial: bool = False) -> None:
    """Raise CompileError naming the first key that prefclean does not do (partial: one level of a folder
    tree, whose keys are checked one by one, not against each other)."""
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
    docs = config.get("persist_docs")
    if docs is not None and not (isinstance(docs, dict) and set(docs) <= {"relation", "columns"}
                                 and all(isinstance(v, bool) for v in docs.values())):
        raise CompileError(f"{owner}: `persist_docs` should be {{relation: true/false, columns: true/false}}")
    if kind == "seed":
        types = config.get("column_types") or {}
        if partial and "column_types" not in config:
            return
        if not isinstance(types, dict) or not all(isinstance(v, str) for v in types.values()):
            raise CompileError(f"{owner}: `column_types` should map column names to DuckDB types")
        return
    strategy = config.get("incremental_strategy")
    if strategy is not None and not partial:
        if strategy not in INCREMENTAL_STRATEGIES:
            raise CompileError(f"{owner}: incremental_strategy='{strategy}' is not supported by prefclean (one of "
                               f"{', '.join(INCREMENTAL_STRATEGIES)}: delete+insert on unique_key, or append)")
        if (strategy == "append") == bool(config.get("unique_key")):
            raise CompileError(f"{owner}: incremental_strategy='{strategy}' " + (
                "appends rows; it takes no unique_key" if strategy == "append" else "needs a unique_key"))
    for hook in ("pre_hook", "post_hook"):
        if not all(isinstance(h, str) for h in as_list(config.get(hook))):
            raise CompileError(f"{owner}: `{hook}` should be SQL, or a list of SQL statements")


def folder_config(tree: dict[str, Any] | None, folder: Path, rel: Path, project_name: str) -> dict[str, Any]:
    """prefclean.yml's `models:` (or `seeds:`) tree, as dbt_project.yml's, for the file at `rel` inside `folder`:
    `+key` (or a known key) is config, any other key a subfolder, or a file by its stem; deeper levels win and
    tags add up. The tree may start with the project's name, as dbt's does."""
    if not tree:
        return {}
    level, config = tree, {}
    if project_name in level and not (folder / project_name).exists() and isinstance(level[project_name], dict):
        config = merge(config, _configs(level))
        level = level[project_name]
    config = merge(config, _configs(level))
    for part in list(rel.parent.parts) + [rel.stem]:
        below = level.get(part)
        if not isinstance(below, dict):
            break
        level = below
        config = merge(config, _configs(level))
    return config


def _is_config(key: str, value: Any) -> bool:
    return key.startswith("+") or (key in MODEL_CONFIG_KEYS + SEED_CONFIG_KEYS + tuple(UNSUPPORTED_CONFIG)
                                   and not isinstance(value, dict) or key == "column_types")


def _configs(level: Any) -> dict[str, Any]:
    return {k.lstrip("+"): v for k, v in (level or {}).items() if _is_config(k, v)} if isinstance(level, dict) else {}


def check_folder_tree(tree: Any, where: str, folder: Path, project_name: str, kind: str = "model") -> None:
    """Every key of a `models:`/`seeds:` tree is config or names a folder or file that exists: a misspelt
    folder would otherwise configure nothing, silently."""
    if tree is None:
        return
    if not isinstance(tree, dict):
        raise CompileError(f"{where}: should be a mapping of folders and +config")
    if project_name in tree and not (folder / project_name).exists() and isinstance(tree[project_name], dict):
        tree = {k: v for k, v in tree.items() if k != project_name} | {"": tree[project_name]}

    def walk(level: dict, path: Path, shown: str) -> None:
        for key, value in level.items():
            if key == "":
                walk(value, path, shown)
                continue
            if _is_config(key, value):
                check(f"{where}{shown}.{key}", normalize({key.lstrip("+"): value}), kind, partial=True)
                continue
            here = path / key
            if not (here.is_dir() or any(path.glob(f"{key}.*"))):
                names = sorted({p.stem for p in path.iterdir()} if path.is_dir() else set())
                close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
                raise CompileError(f"{where}{shown}.{key}: no folder or {kind} named '{key}' in {folder.name}/"
                                   f"{path.relative_to(folder).as_posix() + '/' if path != folder else ''}"
                                   + (f"; did you mean '{close[0]}'?" if close else "")
                                   + " (config keys start with +)")
            if not isinstance(value, dict):
                raise CompileError(f"{where}{shown}.{key}: should be a mapping of +config (and subfolders)")
            walk(value, here, f"{shown}.{key}")

    walk(tree, folder, "")
