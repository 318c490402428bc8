"""Push Parquet shards and a dataset card to a Hugging Face dataset repo, in one commit.

The real `huggingface_hub` client does the talking, so the token comes from wherever it looks (`HF_TOKEN`, then
the saved login) and `HF_ENDPOINT` is honoured. prefclean never reads the token except to say that it is
missing, and never writes it anywhere. Every file goes in a single commit: the repo gets all of it or none.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..errors import ExportError

MAIN = "main"


class HubExportError(ExportError):
    """The Hub refused or could not be reached; nothing was committed."""


def data_dir(config_name: str) -> str:
    """Where a config's shards live: `data/` for the default config, else a folder named after it (as `datasets`)."""
    return "data" if config_name == "default" else config_name


def shard_path(config_name: str, split: str, index: int, count: int) -> str:
    return f"{data_dir(config_name)}/{split}-{index:05d}-of-{count:05d}.parquet"


# ---------------------------------------------------------------------------------------------- the dataset card

def _split_card(markdown: str) -> tuple[dict, str]:
    """A card's YAML header (as a dict) and its body."""
    match = re.match(r"\A---\s*\n(.*?)\n---\s*\n?", markdown, re.S)
    if not match:
        return {}, markdown
    meta = yaml.safe_load(match.group(1)) or {}
    return (meta if isinstance(meta, dict) else {}), markdown[match.end():]


def _render_card(meta: dict, body: str) -> str:
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"---\n{header}---\n\n{body.lstrip()}"


def _config_entry(config_name: str, split: str) -> dict:
    return {"config_name": config_name, "data_files": [{"split": split, "path": f"{data_dir(config_name)}/{split}-*"}]}


def _merge_configs(existing: list, config_name: str, split: str) -> list:
    """The card's `configs:` with this config's split (re)declared and every other config and split kept."""
    configs = [dict(c) for c in existing or [] if isinstance(c, dict) and c.get("config_name")]
    entry = next((c for c in configs if c["config_name"] == config_name), None)
    if entry is None:
        configs.append(_config_entry(config_name, split))
        return configs
    files = entry.get("data_files")
    files = [files] if isinstance(files, (str, dict)) else list(files or [])
    kept = [f for f in files if isinstance(f, dict) and f.get("split") != split]
    entry["data_files"] = kept + _config_entry(config_name, split)["data_files"]
    return configs


def _merge_row_counts(meta: dict, existing: dict) -> None:
    """Keep the row counts an earlier push recorded for other configs and splits."""
    before = (existing.get("prefclean") or {}).get("rows")
    ours = (meta.get("prefclean") or {}).get("rows")
    if not isinstance(before, dict) or not isinstance(ours, dict):
        return
    merged = {c: dict(splits) for c, splits in before.items() if isinstance(splits, dict)}
    for config, splits in ours.items():
        merged.setdefault(config, {}).update(splits)
    meta["prefclean"]["rows"] = merged


def dataset_card(*, repo_id: str, pretty_name: str, config_name: str, split: str, num_rows: int,
                 prefclean_version: str, license: str | None, source_dataset: str, source_is_hub: bool = False,
                 model: str = "", judge_models: list[str], task: str, aspect: str,
                 decision_counts: dict[str, int], thresholds: dict[str, Any], schema: list[tuple[str, str]]) -> str:
    """The README.md pushed with the data: YAML facts a program can read, then the same facts for people."""
    meta: dict[str, Any] = {}
    if license:
        meta["license"] = str(license)
    meta["pretty_name"] = pretty_name
    meta["tags"] = ["prefclean", "preference", "dpo", "llm-as-a-judge"]
    if source_is_hub:
        meta["source_datasets"] = [source_dataset]
    meta["configs"] = [_config_entry(config_name, split)]
    meta["prefclean"] = {
        "version": prefclean_version,
        "model": model,
        "source_dataset": source_dataset,
        "judge_models": list(judge_models),
        "task": task,
        "aspect": aspect,
        "decisions": {str(k): int(v) for k, v in decision_counts.items()},
        "thresholds": dict(thresholds),
        "rows": {config_name: {split: int(num_rows)}},
        "schema": [{"name": name, "type": dtype} for name, dtype in schema],
    }
    total = sum(decision_counts.values())
    decision_lines = "\n".join(f"| {d} | {n} | {100 * n / total:.0f}% |" for d, n in sorted(decision_counts.items())) \
        if total else "| (no decisions recorded) | | |"
    threshold_lines = "\n".join(f"| `{k}` | `{v}` |" for k, v in thresholds.items()) or "| (none) | |"
    schema_lines = "\n".join(f"| `{name}` | `{dtype}` |" for name, dtype in schema)
    judges = ", ".join(f"`{m}`" for m in judge_models) or "unknown"
    body = f"""# {pretty_name}

A preference dataset (prompt, chosen, rejected) cleaned with prefclean {prefclean_version}: every pair was
rated by an LLM judge, then kept, flipped (chosen and rejected swapped) or dropped by the thresholds below.

- **Source dataset:** `{source_dataset}`
- **Judge model(s):** {judges}
- **Task / aspect:** {task} / {aspect}
- **This push:** config `{config_name}`, split `{split}`, {num_rows} rows (model `{model}`)

```python
from datasets import load_dataset

ds = load_dataset("{repo_id}", "{config_name}", split="{split}")
```

## Decisions

| decision | pairs | share |
|---|---|---|
{decision_lines}

## Thresholds

| var | value |
|---|---|
{threshold_lines}

## Schema

| column | type |
|---|---|
{schema_lines}
"""
    return _render_card(meta, body)


# ---------------------------------------------------------------------------------------------------- the push

def _describe_http_error(exc: Exception, repo_id: str, revision: str, endpoint: str) -> str:
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    status = getattr(getattr(exc, "response", None), "status_code", None)
    server = (getattr(exc, "server_message", None) or "").splitlines()
    detail = f" ({server[0]})" if server else ""
    where = f"datasets/{repo_id} at {endpoint}"
    if isinstance(exc, RevisionNotFoundError):
        return f"revision '{revision}' not found in {where}: use an existing branch or a new branch name"
    if status == 401 and not isinstance(exc, RepositoryNotFoundError):
        return f"the Hub rejected the token (401){detail}: set HF_TOKEN to a valid token or run `hf auth login`"
    if status == 403:
        return (f"the token may not write to {where} (403){detail}: use a write token with access to "
                f"'{repo_id.split('/')[0]}', or change `repo_id`")
    if isinstance(exc, RepositoryNotFoundError):
        return f"{where} not found or not visible to this token ({status}): check `repo_id` and the token"
    if status == 412:
        return f"{where}@{revision} changed while pushing (412): run the export again"
    if status == 400:
        return f"the Hub refused the push to {where}@{revision} (400){detail}: check `revision` and `config_name`"
    if isinstance(exc, HfHubHTTPError):
        return f"the Hub failed on {where} ({status}){detail}"
    return f"{where}: {' '.join(str(exc).split())[:300]}"


def _is_unreachable(exc: BaseException) -> bool:
    """A connection-level failure (refused, DNS, timeout), whichever HTTP library the client uses underneath."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"TransportError", "ConnectionError", "ConnectError", "Timeout", "TimeoutException"}) \
        and "HfHubHTTPError" not in names


def _existing_files(api, repo_id: str, revision: str) -> list[str]:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        return list(api.list_repo_files(repo_id, repo_type="dataset", revision=revision))
    except (RevisionNotFoundError, RepositoryNotFoundError):
        return []


def _existing_card(api, repo_id: str, revision: str, files: list[str]) -> dict:
    if "README.md" not in files:
        return {}
    with tempfile.TemporaryDirectory(prefix="prefclean-card-") as cache:  # not the user's HF cache
        path = api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision, cache_dir=cache)
        return _split_card(Path(path).read_text(encoding="utf-8"))[0]


def push_parquet_to_hub(files: list[Path], *, repo_id: str, card_markdown: str, private: bool = False,
                        revision: str | None = MAIN, commit_message: str | None = None,
                        config_name: str = "default", split: str = "train") -> dict:
    """Create the repo (and branch) if needed, then commit the shards and the card in one commit.

    Shards of the same config and split left by an earlier push are deleted in that commit, and the card keeps
    the `configs:` of the other configs already in the repo. Returns the commit's oid and url.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants, get_token
    from huggingface_hub.errors import HfUriError

    revision = revision or MAIN
    # Read at call time: the client's own constant is fixed when huggingface_hub is first imported.
    endpoint = (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    if get_token() is None:
        raise HubExportError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access)")
    api = HfApi(endpoint=endpoint)
    try:
        try:
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        except HfUriError:
            # The repo exists but the token may not create in its namespace; huggingface_hub then builds the
            # repo's URL against its import-time endpoint and fails to parse it under HF_ENDPOINT. Carry on:
            # the commit below says whether the token may write.
            pass
        if private and not api.repo_info(repo_id, repo_type="dataset").private:
            raise HubExportError(f"datasets/{repo_id} exists and is public but the export says `private: true`: "
                                 "make it private on the Hub, or set `private: false`")
        if revision != MAIN:
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        # Everything below is planned against this head; the commit names it as parent, so a push that
        # raced ours makes the Hub refuse ours instead of mixing the two.
        head = api.repo_info(repo_id, repo_type="dataset", revision=revision).sha
        remote = _existing_files(api, repo_id, head)
        meta, body = _split_card(card_markdown)
        existing = _existing_card(api, repo_id, head, remote)
        meta["configs"] = _merge_configs(existing.get("configs", []), config_name, split)
        if "license" not in meta and existing.get("license"):
            meta = {"license": existing["license"], **meta}
        _merge_row_counts(meta, existing)
        new_paths = [shard_path(config_name, split, i, len(files)) for i in range(len(files))]
        stale = re.compile(rf"{re.escape(data_dir(config_name))}/{re.escape(split)}-\d+-of-\d+\.parquet")
        deletions = [CommitOperationDelete(path_in_repo=p) for p in remote if stale.fullmatch(p) and p not in new_paths]
        additions = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(f)) for p, f in zip(new_paths, files)]
        additions.append(CommitOperationAdd(path_in_repo="README.md",
                                            path_or_fileobj=_render_card(meta, body).encode("utf-8")))
        info = api.create_commit(repo_id, deletions + additions, repo_type="dataset", revision=revision,
                                 parent_commit=head,
                                 commit_message=commit_message or f"prefclean: push {config_name}/{split}")
    except HubExportError:
        raise
    except Exception as exc:  # the client's errors become one line; anything else is a bug
        if type(exc).__name__ == "OfflineModeIsEnabled":
            raise HubExportError("HF_HUB_OFFLINE is set: unset it to push to the Hub") from None
        if _is_unreachable(exc):
            raise HubExportError(f"cannot reach the Hub at {endpoint} ({type(exc).__name__}): check HF_ENDPOINT "
                                 "and the network") from None
        from huggingface_hub.errors import HfHubHTTPError

        if isinstance(exc, HfHubHTTPError):
            raise HubExportError(_describe_http_error(exc, repo_id, revision, endpoint)) from None
        raise
    # The client skips files the Hub already holds byte for byte, and the whole commit when nothing changed.
    return {"oid": info.oid, "url": info.commit_url, "files": new_paths + ["README.md"], "deleted": len(deletions),
            "changed": info.oid != head}
