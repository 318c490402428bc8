"""Judged pairs to an Argilla 2.x dataset for human review, and the submitted reviews back as Arrow.

Reviewers see what the judge saw: the instruction, the responses in the shuffled order (`response_1`...), a 1-5
rating and a rationale question per response and a ranking question, with the judge's answers as suggestions.
Record ids are the pair ids, so exporting again updates records (human responses are kept) instead of adding
duplicates. Each record's metadata says its review queue (`queue`: all, uncertain or calibration, see
review_queue.py); calibration records carry no judge suggestions or judge metadata, so nothing anchors the
reviewer. Everything that can be checked is checked before the first write: a bad table, key or server, or a
dataset of the same name with other settings, leaves the server as it was.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import pyarrow as pa

RATING_VALUES = [1, 2, 3, 4, 5]
REQUIRED_COLUMNS = ("pair_id", "instruction", "generations")
DECISIONS = ["keep", "flip", "drop"]
GUIDELINES = (
    "Each record is one instruction and the responses an LLM judge rated, in the order the judge saw them. "
    "Rate every response from 1 (poor) to 5 (excellent), say why if you like, and rank them best first. "
    "The judge's answers are shown as suggestions; your submitted ratings replace the judge's decision when the "
    "project is built again."
)
RESPONSE_STATUSES = ("submitted", "draft", "discarded")
REVIEW_SCHEMA = pa.schema([
    ("pair_id", pa.string()),
    ("user", pa.string()),
    ("status", pa.string()),  # submitted, draft or discarded: only submitted reviews count anywhere
    ("queue", pa.string()),  # the record's review queue when it was exported (null: exported before queues)
    ("ratings", pa.list_(pa.int32())),
    ("rationales", pa.list_(pa.string())),
    ("ranking", pa.list_(pa.string())),
    ("order", pa.list_(pa.string())),
    ("inserted_at", pa.timestamp("us")),
    ("updated_at", pa.timestamp("us")),
])


class ArgillaExportError(Exception):
    """One line saying what went wrong with the Argilla server or the dataset (never the API key)."""


def response_name(i: int) -> str:
    return f"response_{i}"


# metadata an older dataset may lack: added to it instead of refusing it
ADDED_METADATA = ("queue", "uncertainty")


@dataclass(frozen=True)
class Layout:
    """The dataset settings for pairs with `n` generations: what we create and what an existing dataset needs."""

    n: int

    def settings(self, min_submitted: int | None = None):
        import argilla as rg

        responses = [response_name(i) for i in range(1, self.n + 1)]
        fields = [rg.TextField("system", title="System prompt", required=False),
                  rg.TextField("instruction", title="Instruction")]
        fields += [rg.TextField(r, title=f"Response {i}") for i, r in enumerate(responses, 1)]
        questions = [rg.RatingQuestion(f"rating_{r}", values=RATING_VALUES, title=f"Rate response {i} (1-5)")
                     for i, r in enumerate(responses, 1)]
        questions += [rg.TextQuestion(f"rationale_{r}", title=f"Why this rating for response {i}?", required=False)
                      for i, r in enumerate(responses, 1)]
        questions.append(rg.RankingQuestion("ranking", values=responses, title="Rank the responses, best first",
                                            required=False))
        metadata = [rg.TermsMetadataProperty("decision", options=DECISIONS, title="Judge decision"),
                    rg.TermsMetadataProperty("reason", title="Why"),
                    rg.FloatMetadataProperty("margin", title="Rating margin (chosen - rejected)"),
                    # which response is the dataset's `chosen`: hidden from annotators so it cannot sway them
                    rg.TermsMetadataProperty("order", title="Original labels, in shown order",
                                             visible_for_annotators=False),
                    rg.TermsMetadataProperty("pair_id", title="Pair id"),
                    *self.added_metadata()]
        return rg.Settings(fields=fields, questions=questions, metadata=metadata, guidelines=GUIDELINES,
                           allow_extra_metadata=False,
                           distribution=rg.TaskDistribution(min_submitted=min_submitted or 1))

    @staticmethod
    def added_metadata():
        import argilla as rg

        from .review_queue import QUEUES

        return [rg.TermsMetadataProperty("queue", options=QUEUES, title="Review queue"),
                rg.FloatMetadataProperty("uncertainty", title="Uncertainty score (higher: review first)")]

    def mismatch(self, existing) -> str | None:
        """Why an existing dataset's settings cannot take our records, or None when they can."""
        wanted = self.settings()
        have_fields = {f.name: f for f in existing.settings.fields}
        for f in wanted.fields:
            if f.name not in have_fields or type(have_fields[f.name]).__name__ != type(f).__name__:
                return f"it has no text field '{f.name}'"
        ours = {f.name for f in wanted.fields}
        extra = [f.name for f in existing.settings.fields if f.required and f.name not in ours]
        if extra:
            return f"it requires field '{extra[0]}', which the export does not fill"
        have_questions = {q.name: q for q in existing.settings.questions}
        for q in wanted.questions:
            kind = type(q).__name__
            have = have_questions.get(q.name)
            if have is None or type(have).__name__ != kind:
                return f"it has no {kind} '{q.name}'"
            if hasattr(q, "values") and list(map(str, have.values)) != list(map(str, q.values)):
                return f"its question '{q.name}' has values {list(have.values)}, not {list(q.values)}"
        have_meta = {m.name: type(m).__name__ for m in existing.settings.metadata}
        for m in wanted.metadata:
            if m.name in ADDED_METADATA and m.name not in have_meta:
                continue
            if have_meta.get(m.name) != type(m).__name__:
                return f"it has no {type(m).__name__} '{m.name}'"
        return None


def push_pairs(table: pa.Table, dataset: str, workspace: str, api_url: str, api_key: str,
               progress: Callable[[int], None] | None = None, batch_size: int = 200,
               min_submitted: int | None = None) -> dict[str, Any]:
    """Create or update the Argilla dataset `dataset` with one record per row of `table` (see REQUIRED_COLUMNS;
    optional: system, order, ratings, rationales, judge_model, score, decision, reason, margin, queue,
    uncertainty). `min_submitted`: the submitted reviews a record needs (Argilla's task distribution; None
    leaves an existing dataset's setting as it is)."""
    rows = _checked_rows(table)
    layout = Layout(n=max([len(r["generations"]) for r in rows], default=2))
    client = connect(api_url, api_key)
    with _translated_errors(api_url):
        ws = _workspace(client, workspace)
        existing = _find_dataset(client, dataset, ws)
        if existing is not None:
            why = layout.mismatch(existing)
            if why:
                raise ArgillaExportError(
                    f"dataset '{dataset}' in workspace '{workspace}' exists with other settings: {why}; "
                    f"delete it or export under another `dataset:` name")
        import argilla as rg

        if existing is not None:
            _update_settings(existing, min_submitted)
        ds = existing or rg.Dataset(name=dataset, workspace=ws, settings=layout.settings(min_submitted),
                                    client=client).create()
        try:
            sent = _upsert(client, ds, [_record(rg, row, layout) for row in rows], progress, batch_size)
        except BaseException as exc:
            if existing is not None:
                raise
            with _translated_errors(api_url):  # a dataset we just made, half filled: take it away again
                ds.delete()
            if isinstance(exc, ArgillaExportError):
                raise ArgillaExportError(f"{exc} (the new dataset '{dataset}' was removed)") from None
            raise
    return {"records": sent, "created": existing is None, "dataset_id": str(ds.id)}


def existing_queues(dataset: str, workspace: str, api_url: str, api_key: str) -> dict[str, str | None]:
    """pair_id -> review queue of every record the dataset already has ({} when there is no such dataset)."""
    client = connect(api_url, api_key)
    with _translated_errors(api_url):
        ws = client.workspaces(name=workspace)
        found = _find_dataset(client, dataset, ws) if ws is not None else None
        if found is None:
            return {}
        return {str(r.get("external_id") or r.get("id")): (r.get("metadata") or {}).get("queue")
                for r in _records(client, found.id, responses=False)}


def pull_responses(dataset: str, workspace: str, api_url: str, api_key: str) -> pa.Table:
    """Every response of `dataset` (submitted, draft or discarded) as one row per (pair, reviewer); see
    REVIEW_SCHEMA. Ratings, rationales are in the order the responses were shown (response_1 first); ranking
    lists them best first."""
    client = connect(api_url, api_key)
    with _translated_errors(api_url):
        ws = client.workspaces(name=workspace) if workspace else None
        found = _find_dataset(client, dataset, ws) if ws is not None else None
        if found is None:
            raise ArgillaExportError(f"no dataset '{dataset}' in workspace '{workspace}' at {api_url} "
                                     f"(run `prefclean export` first)")
        layout = Layout(n=sum(1 for f in found.settings.fields if f.name.startswith("response_")))
        users = _usernames(client)
        rows = [row for record in _records(client, found.id, responses=True)
                for row in _review_rows(record, layout, users)]
    return pa.Table.from_pylist(rows, schema=REVIEW_SCHEMA)


def connect(api_url: str, api_key: str):
    """A logged-in client, or one line saying why not (server down, not Argilla, key refused)."""
    import httpx
    from argilla import Argilla
    from argilla._exceptions import ArgillaCredentialsError, ArgillaError

    try:
        return Argilla(api_url=api_url, api_key=api_key, timeout=60, retries=1)
    except ArgillaCredentialsError:
        raise ArgillaExportError(f"the Argilla server at {api_url} refused the API key "
                                 f"(check $ARGILLA_API_KEY; the key is in the user's settings page)") from None
    except httpx.TransportError as exc:
        raise ArgillaExportError(f"cannot reach the Argilla server at {api_url} ({_short(exc)}); "
                                 f"is it running, and is ARGILLA_API_URL right?") from None
    except (ArgillaError, ValueError) as exc:  # a 404 page, or a 200 that is not Argilla's JSON
        status = getattr(exc, "status_code", None)
        raise ArgillaExportError(f"{api_url} does not answer like an Argilla 2.x server "
                                 f"({type(exc).__name__}{f' {status}' if status else ''} on /api/v1/me)") from None


class _translated_errors:
    """SDK and HTTP exceptions raised past this point become one-line ArgillaExportErrors."""

    def __init__(self, api_url: str):
        self.api_url = api_url
        self._warnings = warnings.catch_warnings()

    def __enter__(self):
        self._warnings.__enter__()
        # the SDK warns on every lookup that finds nothing; for us "not there yet" is normal
        warnings.filterwarnings("ignore", message=".* not found", category=UserWarning)
        return self

    def __exit__(self, kind, exc, tb):
        import httpx
        from argilla._exceptions import ArgillaError, ForbiddenError

        self._warnings.__exit__(kind, exc, tb)
        if exc is None or isinstance(exc, ArgillaExportError):
            return False
        if isinstance(exc, httpx.TransportError):
            raise ArgillaExportError(f"lost the Argilla server at {self.api_url} ({_short(exc)})") from None
        if isinstance(exc, ForbiddenError):
            raise ArgillaExportError(f"the Argilla user of this API key may not do this: {_short(exc)}") from None
        if isinstance(exc, ArgillaError):
            raise ArgillaExportError(f"Argilla server at {self.api_url}: {_server_detail(exc)}") from None
        return False


def _server_detail(exc: BaseException) -> str:
    """The server's own explanation inside an SDK error ({"detail": ...}), else the error text."""
    text = str(exc)
    found = re.search(r'"detail":\s*("(?:[^"\\]|\\.)*")', text)
    return _short(Exception(json.loads(found.group(1)) if found else text))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _checked_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows, after the checks that need no server: columns, unique pair ids, one generation count, ratings."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ArgillaExportError(f"the table has no column '{missing[0]}' (needs {', '.join(REQUIRED_COLUMNS)})")
    rows = table.to_pylist()
    seen: set[str] = set()
    counts: set[int] = set()
    for row in rows:
        pid = row["pair_id"]
        if pid is None or str(pid) in seen:
            raise ArgillaExportError(f"pair_id {pid!r} is {'null' if pid is None else 'repeated'}: "
                                     f"record ids come from pair_id, which must be unique")
        seen.add(str(pid))
        gens = row["generations"] or []
        if not row["instruction"] or not gens or any(g is None for g in gens):
            raise ArgillaExportError(f"pair {pid}: empty instruction or generation")
        counts.add(len(gens))
        for rating in row.get("ratings") or []:
            if rating is not None and rating not in RATING_VALUES:
                raise ArgillaExportError(f"pair {pid}: rating {rating} is not in 1-5")
    if len(counts) > 1:
        raise ArgillaExportError(f"rows have {sorted(counts)} generations; every pair needs the same number")
    return rows


def _record(rg, row: dict[str, Any], layout: Layout):
    names = [response_name(i) for i in range(1, layout.n + 1)]
    fields = {"instruction": row["instruction"], **dict(zip(names, row["generations"]))}
    if row.get("system"):
        fields["system"] = row["system"]
    queue = row.get("queue")
    blind = queue == "calibration"  # the reviewer sees nothing of the judge: no suggestions, no judge metadata
    agent = _agent(row.get("judge_model"))
    score = row.get("score")
    ratings = [] if blind else list(row.get("ratings") or [])
    rationales = [] if blind else list(row.get("rationales") or [])
    suggestions = []
    for name, rating in zip(names, ratings):
        if rating is not None:
            suggestions.append(rg.Suggestion(f"rating_{name}", int(rating), agent=agent, score=score))
    for name, rationale in zip(names, rationales):
        if rationale:
            suggestions.append(rg.Suggestion(f"rationale_{name}", rationale, agent=agent, score=score))
    if len(ratings) == layout.n and all(r is not None for r in ratings):
        best_first = sorted(names, key=lambda n: -ratings[names.index(n)])  # stable: ties keep the shown order
        suggestions.append(rg.Suggestion("ranking", best_first, agent=agent))
    metadata = {"pair_id": str(row["pair_id"])}
    if queue is not None:
        metadata["queue"] = str(queue)
    for key in ("decision", "reason") if not blind else ():
        if row.get(key) is not None:
            metadata[key] = str(row[key])
    for key in ("margin", "uncertainty") if not blind else ():
        if row.get(key) is not None:
            metadata[key] = float(row[key])
    if row.get("order"):
        metadata["order"] = ",".join(map(str, row["order"]))
    return rg.Record(id=str(row["pair_id"]), fields=fields, metadata=metadata, suggestions=suggestions)


def _agent(models: str | None) -> str | None:
    """The judge model(s) as a suggestion's agent, which Argilla takes only of letters, digits, -_:./ and spaces
    (a panel's 'model-a, model-b' is refused as written): other characters become spaces, at most 200 kept."""
    if not models:
        return None
    text = " ".join(re.sub(r"[^a-zA-Z0-9\-_:./\s]+", " ", str(models)).split())[:200].strip()
    return text if re.search(r"[a-zA-Z0-9]", text) else None


def _upsert(client, ds, records, progress, batch_size: int) -> int:
    """Upsert in batches through the SDK's bulk endpoint (by record id = pair_id), reporting progress.
    All records are turned into API models first, so a bad one fails before anything is sent."""
    from argilla._exceptions import ArgillaAPIError

    for record in records:
        record.dataset = ds
    models = [record.api_model() for record in records]
    size = max(1, min(batch_size, client.api.records.MAX_RECORDS_PER_UPSERT_BULK))
    sent = 0
    for start in range(0, len(models), size):
        batch = models[start:start + size]
        try:
            client.api.records.bulk_upsert(dataset_id=ds.id, records=batch)
        except ArgillaAPIError as exc:
            detail = _server_detail(exc)
            at = re.search(r"position (\d+)", detail)
            if at and int(at.group(1)) < len(batch):
                detail = f"pair {batch[int(at.group(1))].external_id}: {detail}"
            raise ArgillaExportError(f"the server rejected a record: {detail}") from None
        sent += len(batch)
        if progress:
            progress(sent)
    return sent


def _workspace(client, name: str):
    import argilla as rg

    found = client.workspaces(name=name)
    return found if found is not None else rg.Workspace(name=name, client=client).create()


def _find_dataset(client, name: str, ws):
    for ds in ws.datasets:
        if ds.name == name:
            return ds.get()
    return None


def _usernames(client) -> dict[str, str]:
    from argilla._exceptions import ArgillaError

    try:
        return {str(u.id): u.username for u in client.users.list()}
    except ArgillaError:  # annotators may not list users: keep the ids
        return {}


def _records(client, dataset_id, *, responses: bool, page: int = 1000):
    """Every record of the dataset, with its responses when asked, through the REST listing the SDK wraps: it
    reads the database (no search-engine window), and the SDK drops each response's timestamps, which say which
    review is the latest."""
    offset = 0
    while True:
        params = {"offset": offset, "limit": page, **({"include": ["responses"]} if responses else {})}
        resp = client.http_client.get(f"/api/v1/datasets/{dataset_id}/records", params=params)
        if resp.status_code >= 400:
            raise ArgillaExportError(f"listing dataset records failed: HTTP {resp.status_code} "
                                     f"{_short(Exception(resp.text))}")
        items = resp.json().get("items", [])
        yield from items
        offset += len(items)
        if len(items) < page:
            return


def _update_settings(ds, min_submitted: int | None) -> None:
    """Bring an existing dataset up to date: the queue metadata an older export did not make, and the task
    distribution when `min_submitted` is set."""
    have = {m.name for m in ds.settings.metadata}
    added = [m for m in Layout.added_metadata() if m.name not in have]
    changed = min_submitted is not None and ds.settings.distribution.min_submitted != min_submitted
    if not added and not changed:
        return
    import argilla as rg

    for m in added:
        ds.settings.metadata.add(m)
    if changed:
        ds.settings.distribution = rg.TaskDistribution(min_submitted=min_submitted)
    ds.update()


def _review_rows(record: dict, layout: Layout, users: dict[str, str]) -> list[dict[str, Any]]:
    names = [response_name(i) for i in range(1, layout.n + 1)]
    metadata = record.get("metadata") or {}
    order = metadata.get("order")
    rows = []
    for response in record.get("responses") or []:
        if response.get("status") not in RESPONSE_STATUSES:
            continue
        values = {k: (v or {}).get("value") for k, v in (response.get("values") or {}).items()}
        ranking = values.get("ranking") or []
        rows.append({
            "pair_id": record.get("external_id") or record.get("id"),
            "user": users.get(str(response.get("user_id")), str(response.get("user_id"))),
            "status": response["status"],
            "queue": metadata.get("queue"),
            "ratings": [values.get(f"rating_{n}") for n in names],
            "rationales": [values.get(f"rationale_{n}") for n in names],
            "ranking": [r["value"] for r in sorted(ranking, key=lambda r: r.get("rank") or 0)] or None,
            "order": order.split(",") if order else None,
            "inserted_at": _timestamp(response.get("inserted_at")),
            "updated_at": _timestamp(response.get("updated_at")),
        })
    return rows


def _timestamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
