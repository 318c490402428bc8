"""`prefclean batch import`: an offline runner's output file (OpenAI's batch output format, as `vllm run-batch`
writes it) into the judgment cache, for the request lines `prefclean batch export` wrote (or a build submitted).

Each answered line is stored as a build collecting it from a provider would store it (batching.read_answers),
its call logged with the `usage` the line reports and its cost at the judge's `price` (less `batch_discount` for
a batch judge), so the next build's saved_by_cache and the call log price it like any other answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ProjectError
from .batching import read_answers


def _result_id(path: Path, number: int, raw_line: bytes) -> str:
    """A result line's custom_id; a line that is no result is the user's mistake, named before anything is stored
    (a requests file imported by mistake, or a damaged one, would otherwise import nothing and say nothing)."""
    try:
        item = json.loads(raw_line)
    except ValueError as exc:
        raise ProjectError(f"{path}: line {number} is not JSON ({exc})") from None
    if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str):
        raise ProjectError(f"{path}: line {number} has no `custom_id`: not a batch output line")
    if "response" not in item and "error" not in item:
        what = "a request line (method, url, body)" if "body" in item else "neither `response` nor `error`"
        raise ProjectError(f"{path}: line {number} is {what}, not a result: import the output file a batch "
                           "runner wrote for it (`vllm run-batch -o`, a provider's output_file_id)")
    return item["custom_id"]


@dataclass
class Imported:
    """What `prefclean batch import` read: answers stored, lines failed, lines prefclean never wrote, and the
    usage the answered lines report with its cost per judge (at its `price`, less `batch_discount` for a batch
    judge, as a build collecting them would count it; None for a judge without a price)."""

    stored: int = 0
    failed: int = 0
    unknown: int = 0
    judges: dict = field(default_factory=dict)  # name -> {answered, prompt_tokens, completion_tokens, cost_usd}

    @property
    def cost_usd(self) -> float | None:
        costs = [j["cost_usd"] for j in self.judges.values() if j["cost_usd"] is not None]
        return round(sum(costs), 6) if costs else None

    def line(self) -> str:
        out = (f"stored {self.stored} judgments, {self.failed} failed, {self.unknown} line"
               f"{'' if self.unknown == 1 else 's'} with an unknown custom_id")
        for name, j in self.judges.items():
            cost = "" if j["cost_usd"] is None else f", ${j['cost_usd']:.4f}"
            out += (f"; judge {name}: {j['answered']} answered, tokens {j['prompt_tokens']}+"
                    f"{j['completion_tokens']}{cost}")
        return out


def import_results(cache, path: Path, task_for, judge_for=lambda name: None) -> Imported:
    """`prefclean batch import`: the answers in an output file (OpenAI's batch output format, as `vllm run-batch`
    writes it) to request lines prefclean exported or submitted, stored in the judgment cache with their calls
    (usage and cost, as a build logs a collected line's). `judge_for(name)`: the judge's config, for its model
    and price (None: a judge no longer in prefclean.yml, logged without a cost)."""
    content = path.read_bytes()
    ids = [_result_id(path, number, raw_line) for number, raw_line in enumerate(content.splitlines(), 1)
           if raw_line.strip()]
    by_judge: dict[str, dict] = {}
    for custom_id, judge, task, aspect, n in cache.execute(
            "select custom_id, any_value(judge), any_value(task), any_value(aspect), any_value(n) from batch_requests "
            "where custom_id in (select unnest(?::varchar[])) group by custom_id", [ids]):
        by_judge.setdefault(judge, {})[custom_id] = (task, aspect, n)
    out = Imported()
    for judge, lines in by_judge.items():
        config = judge_for(judge)
        read = read_answers(content, lines, judge, getattr(config, "model", None) or "", task_for)
        price = getattr(config, "price", None)
        batch = getattr(config, "engine", None) == "openai-batch"
        cost = 0.0
        for call in read.calls:  # a failed line is not billed; an answered one (readable or not) at its usage
            if price is None:
                call["cost_usd"] = None
                continue
            call["cost_usd"] = 0.0 if call["status"] == "error" else price.cost(
                call["prompt_tokens"] or 0, call["completion_tokens"] or 0, batch=batch)
            cost += call["cost_usd"]
        cache.store(read.judgments, read.calls)
        out.stored, out.failed = out.stored + len(read.judgments), out.failed + len(read.failed)
        out.judges[judge] = {"answered": sum(1 for c in read.calls if c["status"] != "error"),
                             "prompt_tokens": read.prompt_tokens, "completion_tokens": read.completion_tokens,
                             "cost_usd": round(cost, 6) if price is not None else None}
    out.unknown = len(set(ids) - {k for lines in by_judge.values() for k in lines})
    return out
