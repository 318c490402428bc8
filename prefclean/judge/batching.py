"""Judging through a provider's batch API (`engine: openai-batch`): collect, submit once, wait, fill.

The judge UDF is called per DuckDB chunk (up to 2,048 rows, from several threads) and must answer each chunk
before DuckDB hands it more, so no call ever sees the whole model. Waiting for a batch inside each call would
submit one small batch per chunk and wait for each in turn (hours each, in series). Instead a model that calls
a batch judge is built in two passes:

1. First pass: each chunk's prompts are rendered and keyed as for any judge. Keys in the judgment cache are
   answered from it; keys already in a submitted, uncollected batch (an earlier build's) are "not judged: batch
   pending"; every other key is recorded for submission and its row is pending too. Nothing is sent.
2. When the model's query is done (`finish`, called by the runner before the model's notes): the recorded
   request lines are uploaded and submitted, split at the provider's limits (requests and bytes per file).
   The batch ids and their lines go into the judgment cache's file (tables `batches`, `batch_requests`) before
   anything waits, so a build stopped from here on never submits them again. Then, unless `wait: false` or
   `--no-wait`, every open batch of the judge is polled every `poll_seconds` (the request counts go to the
   reporter as BatchProgress events) until it ends, and its output and error files are collected: answers
   into the cache, failed lines remembered for this build.
3. If anything was collected, the runner builds the model again: every row is now answered by the cache, or
   failed with its line's error, or (with no wait) still pending. Its counters are those of the second pass.

Budgets (judge/budget.py) are decided in the first pass: a key is recorded for submission only when its
reservation (its prompt, counted as the plan counts it, + `max_tokens`, at the batch price) fits what is left of the judge's budget and
the build's --max-cost; the others are "not judged: budget", never submitted, and the next build records them
again. A collected line settles its reservation to the `usage` in the batch output; its cost (at the price
less `batch_discount`) goes to the build's counters, the summary and the call log's `cost_usd`.

The next build first looks at the judge's open batches: what finished is collected before any key is looked
up, what is still running stays pending, and only keys in no open batch (new rows, or lines that failed or
expired: not cached) are submitted. A line's `custom_id` is its judgment-cache key. A build killed between
the provider creating a batch and its id being stored (one HTTP round trip) would submit that batch again.

`prefclean batch export` records the lines and writes them to a JSONL file instead of submitting (for offline
runners such as `vllm run-batch`); `prefclean batch import` (batch_import.py) reads such a runner's output file
into the cache.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import JudgeError
from ..events import BatchProgress
from ..interrupts import INTERRUPTED
from ..redact import redact_known
from .budget import LATER, NOT_JUDGED_BUDGET
from .dispatch import SETTLE_POLL
from .engines.base import EngineError
from .engines.openai_batch import TERMINAL, completion_of
from .record import Judgment

PENDING = "not judged: batch pending"
ROW_COUNTS = ("rows", "cached", "deduplicated", "judged", "failed", "pending", "refreshed", "not_judged_budget")


@dataclass
class Shared:
    """What a batch judge's sessions (one per task) share in one build: each collects the judge's batches,
    whatever their task, and they spend one budget."""

    failed: dict = field(default_factory=dict)  # keys whose line failed in this build -> why
    collected: set = field(default_factory=set)  # keys answered from a batch in this build
    held: dict = field(default_factory=dict)  # key -> its budget reservation (budget.Hold)
    over_budget: set = field(default_factory=set)  # keys the budget could not hold: not submitted


@dataclass
class Line:
    key: str
    line: str  # the JSONL request line
    task: str
    aspect: str
    n: int


class BatchJudging:
    """One batch judge's requests during one build (thread-safe: DuckDB calls the UDF from several threads)."""

    def __init__(self, judging, session, *, wait: bool, export_to: Path | None = None, shared: Shared | None = None):
        self.judging, self.session = judging, session
        self.engine = session.dispatcher.engine
        self.config = self.engine.config
        self.cache = judging.cache
        self.budget = session.dispatcher.budget  # the judge's, shared by its sessions
        self.wait = wait and bool(self.config.wait)
        self.export_to = export_to
        self.lock = threading.Lock()
        self.recorded: dict[str, Line] = {}  # this model's keys to submit
        self.shared = shared if shared is not None else Shared()
        self.failed, self.collected = self.shared.failed, self.shared.collected
        self.states: dict[str, str] = {}  # key -> pending | failed | not_judged_budget, as this build's rows last got it
        self.model: str | None = None
        self.model_start: dict = {}  # the judge's counters when this model began (restored for the second pass)
        self.exported = 0

    # -- first pass (inside the judge UDF) --------------------------------------------------------------
    def begin(self) -> None:
        """Once per model, before its first look-up: collect the judge's batches that have finished since."""
        with self.lock:
            model = self.judging.ctx.model
            if model == self.model:
                return
            self.model = model
            self.model_start = self.session.stats.as_dict()
            self._collect_open(block=False)

    def pending(self, task_name: str, aspect: str, requests: dict, params) -> list[Judgment]:
        """The rows of keys the cache did not answer: failed in this build, pending in an open batch, recorded
        for submission (pending too) when the budget holds them, else not judged: budget."""
        engine = self.engine
        out = []
        with self.lock:
            open_keys = self._open_keys(list(requests))
            for key, request in requests.items():
                if key in self.failed:
                    self.states[key] = "failed"
                    out.append(self._row(task_name, aspect, key, self.failed[key]))
                    continue
                if key not in open_keys and not self._holds(key, request):
                    self.states[key] = "not_judged_budget"
                    out.append(self._row(task_name, aspect, key, NOT_JUDGED_BUDGET))
                    continue
                self.states[key] = "pending"
                if key not in open_keys:  # a later pass meets keys that hang on answers collected before it
                    self.recorded.setdefault(key, Line(key, engine.request_line(
                        key, request.messages, params, request.response_format), task_name, aspect, request.n))
                batch = open_keys.get(key)
                out.append(self._row(task_name, aspect, key, f"{PENDING} ({batch})" if batch else PENDING))
        return out

    def _holds(self, key: str, request) -> bool:
        """Whether the budget holds this key's line (reserved once per build; an export spends nothing)."""
        shared = self.shared
        if self.export_to is not None or key in shared.held or key in shared.collected:
            return True
        if key in shared.over_budget:
            return False
        prompt = self.budget.prompt(request.messages, exact=True)
        held = self.budget.reserve(prompt)  # held until collected
        while held is LATER:  # under --max-cost, beside another judge's requests in flight: they settle soon
            time.sleep(SETTLE_POLL)
            held = self.budget.reserve(prompt)
        if held is None:
            shared.over_budget.add(key)
            self.judging.ctx.note_once(
                f"judge {self.session.name}: budget reached ({self.budget.stopped}): the lines not submitted are "
                f"marked '{NOT_JUDGED_BUDGET}'; the next build judges them")
            return False
        shared.held[key] = held
        return True

    def _release(self, key: str, prompt_tokens: int | None, completion_tokens: int | None) -> float:
        """A line is over: its reservation (if this build made one) becomes what its output says it used, else
        it is an earlier build's line, reported as spent here. Returns its cost."""
        held = self.shared.held.pop(key, None)
        if held is None:
            return self.budget.account_earlier(prompt_tokens, completion_tokens)
        return self.budget.settle(held, prompt_tokens, completion_tokens)

    def _row(self, task: str, aspect: str, key: str, error: str) -> Judgment:
        return Judgment(judge=self.session.name, model=self.engine.model, task=task, aspect=aspect, error=error,
                        key=key, engine=self.engine.kind)

    def state_of(self, key: str) -> str | None:
        """judged (collected from a batch in this build), pending, failed, or None (answered by the cache)."""
        return "judged" if key in self.collected else self.states.get(key)

    # -- after the model's query ------------------------------------------------------------------------
    def finish(self) -> bool:
        """Submit what the model recorded, wait for (or, without waiting, just look at) the judge's batches and
        collect what ended. True when the model should be built again from the cache."""
        with self.lock:
            if self.model != self.judging.ctx.model:
                # called after every model: one that never asked this judge has nothing to submit or fill, and
                # collecting for it would rebuild it with the judging model's counters (negative pending rows)
                return False
            recorded, self.recorded = list(self.recorded.values()), {}
            if self.export_to is not None:
                self._export(recorded)
                return False
            if recorded:
                self._submit(recorded)
            before = len(self.collected) + len(self.failed)
            self._collect_open(block=self.wait)
            rerun = len(self.collected) + len(self.failed) > before
            if rerun:  # the next pass counts the model's rows again, from the cache
                self.session.stats.restore(self.model_start, ROW_COUNTS)
            return rerun

    def _split(self, lines: list[Line]) -> list[list[Line]]:
        chunks: list[list[Line]] = [[]]
        size = 0
        for line in lines:
            length = len(line.line.encode()) + 1
            if chunks[-1] and (len(chunks[-1]) >= self.config.max_requests_per_file
                               or size + length > self.config.max_bytes_per_file):
                chunks.append([])
                size = 0
            chunks[-1].append(line)
            size += length
        return [c for c in chunks if c]

    def _submit(self, lines: list[Line]) -> None:
        loop = self.judging.loop
        for chunk in self._split(lines):
            jsonl = "".join(line.line + "\n" for line in chunk).encode()
            try:
                file_id = loop.run(self.engine.upload(jsonl))
                batch = loop.run(self.engine.create(file_id))
            except EngineError as exc:
                raise JudgeError(f"judge '{self.session.name}': could not submit a batch: {exc}") from None
            self._store_batch(batch, file_id, chunk)
            self.session.stats.add(requests=len(chunk))

    def _store_batch(self, batch: dict, file_id: str, chunk: list[Line]) -> None:
        """The batch and its lines, in one transaction."""
        rows = [[line.key, batch["id"], self.session.name, line.task, line.aspect, line.n, line.line] for line in chunk]
        self.cache.execute_in_transaction([
            ("insert into batches (batch_id, judge, input_file_id, status, requests) values (?, ?, ?, ?, ?)",
             [batch["id"], self.session.name, file_id, batch.get("status"), len(chunk)]),
            ("insert or replace into batch_requests (custom_id, batch_id, judge, task, aspect, n, line) "
             "select unnest(r, recursive := true) from (select unnest(?::struct(c varchar, b varchar, j varchar, "
             "t varchar, a varchar, n integer, l varchar)[]) as r)", [[dict(zip("cbjtanl", row)) for row in rows]]),
        ])

    def _open_keys(self, keys: list[str]) -> dict[str, str]:
        """key -> the open batch it is in."""
        if not keys:
            return {}
        rows = self.cache.execute(
            "select r.custom_id, r.batch_id from batch_requests r join batches b using (batch_id) "
            "where b.collected_at is null and b.status <> 'exported' "
            "and r.custom_id in (select unnest(?::varchar[]))", [keys])
        return dict(rows)

    def _collect_open(self, *, block: bool) -> None:
        """Look at every open batch of this judge; collect those that ended. With block, until all have."""
        loop, poll = self.judging.loop, float(self.config.poll_seconds)
        while True:
            open_ids = [r[0] for r in self.cache.execute(
                "select batch_id from batches where judge = ? and collected_at is null and status <> 'exported' "
                "order by submitted_at", [self.session.name])]
            if not open_ids:
                return
            for batch_id in open_ids:
                try:
                    batch = loop.run(self.engine.retrieve(batch_id))
                except EngineError as exc:
                    if exc.status == 404:  # the provider no longer knows it: its lines are resubmitted
                        self._close(batch_id, "missing", None)
                        continue
                    if not block:
                        self.judging.ctx.note_once(f"judge {self.session.name}: could not look at batch {batch_id}: {exc}")
                        return
                    raise JudgeError(f"judge '{self.session.name}': could not look at batch {batch_id}: {exc}") from None
                counts = batch.get("request_counts") or {}
                status = batch.get("status") or "unknown"
                self.judging.ctx.report(BatchProgress(self.session.name, batch_id, status, int(counts.get("completed") or 0),
                                                      int(counts.get("failed") or 0), int(counts.get("total") or 0)))
                self.cache.execute("update batches set status = ?, completed = ?, failed = ? where batch_id = ?",
                                   [status, counts.get("completed"), counts.get("failed"), batch_id])
                if status in TERMINAL:
                    self._collect(batch)
            if not block:
                return
            deadline = time.monotonic() + poll
            while time.monotonic() < deadline:
                if INTERRUPTED.is_set():
                    raise KeyboardInterrupt
                time.sleep(min(0.1, poll))

    def _collect(self, batch: dict) -> None:
        """Store a finished batch's answers; remember its failed lines (resubmitted by the next build)."""
        batch_id, loop = batch["id"], self.judging.loop
        lines = {r[0]: r[1:] for r in self.cache.execute(
            "select custom_id, task, aspect, n from batch_requests where batch_id = ?", [batch_id])}
        seen: set[str] = set()
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if not file_id:
                continue
            try:
                content = loop.run(self.engine.content(file_id))
            except EngineError as exc:
                raise JudgeError(f"judge '{self.session.name}': could not read file {file_id} of batch "
                                 f"{batch_id}: {exc}") from None
            seen |= self.store_lines(content, lines)
        for key in set(lines) - seen:  # no line in either file: nothing billed, the reservation is released
            if key in self.shared.held:
                self._release(key, 0, 0)
        if batch.get("status") == "failed":
            errors = (batch.get("errors") or {}).get("data") or []
            why = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict)) or "no reason given"
            for key in set(lines) - seen:
                self.failed[key] = f"batch {batch_id} failed: {why}"
        else:
            for key in set(lines) - seen:
                self.failed[key] = f"batch {batch_id} ended {batch.get('status')} without answering this request"
        self._close(batch_id, batch.get("status"), json.dumps(batch.get("errors")) if batch.get("errors") else None)

    def _close(self, batch_id: str, status, errors) -> None:
        self.cache.execute("update batches set status = ?, errors = ?, collected_at = now() where batch_id = ?",
                           [status, errors, batch_id])

    def store_lines(self, content: bytes, lines: dict) -> set[str]:
        """Answers in an output/error file into the cache, failures remembered; the custom_ids read."""
        read = read_answers(content, lines, self.session.name, self.engine.model, self.judging.task)
        cost = 0.0
        for call in read.calls:  # a failed line is not billed; an answered one (readable or not) at its usage
            answered = call["status"] != "error"
            call["cost_usd"] = self._release(call["key"], call["prompt_tokens"] if answered else 0,
                                             call["completion_tokens"] if answered else 0)
            cost += call["cost_usd"]
            if self.budget.price is None:
                call["cost_usd"] = None
        self.cache.store(read.judgments, read.calls)
        self.session.stats.add(prompt_tokens=read.prompt_tokens, completion_tokens=read.completion_tokens,
                               cost_usd=cost)
        for judgment in read.judgments:
            self.collected.add(judgment.key)
            self.failed.pop(judgment.key, None)
        self.failed.update(read.failed)
        return read.seen

    # -- offline runners ----------------------------------------------------------------------------------
    def _export(self, lines: list[Line]) -> None:
        """Append the lines to the export file and remember them (batch `exported`), for `batch import`."""
        if not lines:
            return
        with open(self.export_to, "a", encoding="utf-8") as f:
            f.write("".join(line.line + "\n" for line in lines))
        self._store_batch({"id": f"exported:{self.export_to.name}:{time.time_ns()}", "status": "exported"},
                          str(self.export_to), lines)
        self.exported += len(lines)


@dataclass
class Answers:
    judgments: list[Judgment]  # the successful ones, for the cache
    calls: list[dict]  # one call-log row per line
    failed: dict[str, str]  # custom_id -> why its line gave no judgment
    seen: set[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0


def read_answers(content: bytes, lines: dict, judge: str, model: str, task_for) -> Answers:
    """The judgments in batch output/error file lines whose custom_id is in `lines` (custom_id -> (task, aspect,
    n)); others are skipped. `task_for(name)` gives the task that parses an answer."""
    out = Answers([], [], {}, set())
    for raw_line in content.splitlines():
        try:
            item = json.loads(raw_line)
            key = item["custom_id"]
        except (ValueError, KeyError, TypeError):
            continue
        if key not in lines:
            continue
        out.seen.add(key)
        task_name, aspect, n = lines[key]
        completion, why = completion_of(item)
        call = {"key": key, "judge": judge, "model": model, "attempt": 1, "latency_ms": None,
                "http_status": (item.get("response") or {}).get("status_code"), "prompt_tokens": None,
                "completion_tokens": None}
        if completion is None:
            out.failed[key] = why
            out.calls.append({**call, "status": "error", "error": why})
            continue
        text = redact_known(completion.text)
        try:
            verdict = task_for(task_name).parse(text, n)
            error = verdict.error
        except Exception as exc:  # a parser bug costs this row
            verdict, error = None, f"parser error: {type(exc).__name__}: {exc}"
        out.calls.append({**call, "status": "ok" if error is None else "unparsed", "error": error,
                          "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens})
        out.prompt_tokens += completion.prompt_tokens or 0
        out.completion_tokens += completion.completion_tokens or 0
        if error is not None:
            out.failed[key] = f"unparseable answer: {error}"
            continue
        out.judgments.append(Judgment(verdict.ratings, verdict.rationales, verdict.winner, judge,
                                      completion.model or model, task_name, aspect, text, None,
                                      completion.prompt_tokens, completion.completion_tokens, None, attempts=1,
                                      key=key, engine="openai-batch"))
    return out
