"""What a judge costs and how much of it one build may spend: `price:` and `budget:` in prefclean.yml.

    judges:
      gpt:
        engine: openai
        price: {input_per_million: 0.15, output_per_million: 0.60}   # USD per million tokens
        budget: {max_requests: 20000, max_tokens: 5000000, max_cost_usd: 10}

`budget.max_tokens` counts prompt and completion tokens together; the judge's own `max_tokens` is the
longest answer of one request (an older key, which is why the budget's keys sit under `budget:`).

A request is sent only when it fits what is left: each request in flight holds a reservation of its
prompt's estimated tokens plus `max_tokens` for the answer (the most it can cost), replaced by what the
server reports once it answers. So concurrent requests cannot overshoot a budget together. What does not
fit is not sent; its rows are "not judged: budget" (not failed, not cached) and the next build judges them.

A batch judge (`engine: openai-batch`) reserves each line the same way when it records it for submission,
before anything is uploaded, at the batch price (`price.batch_discount` off), so the lines a budget cannot
hold are never submitted. A line collected in the same build settles to the `usage` its output reports; a
line still in a batch when the build ends stays held (the summary says so). Answers collected from an
earlier build's batch are reported as spent by the build that collects them, but count against the budget
of the build that submitted them (which held them), not this one's.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.judges import Budget, Price

NOT_JUDGED_BUDGET = "not judged: budget"


def estimate_tokens(messages: list[dict]) -> int:
    """Prompt tokens when no tokenizer is at hand: about four characters a token, over the messages' text
    as it is sent (joined by newlines). Plan and budget use the same rule."""
    return len("\n".join(str(m.get("content") or "") for m in messages)) // 4


class BudgetGuard:
    """One judge's spending during one build, against its budget (and the build's --max-cost, shared by
    every judge through `BuildCap`). Thread-safe: the judge loop reserves, DuckDB threads read."""

    def __init__(self, budget: Budget | None, price: Price | None, max_tokens: int, cap: "BuildCap | None" = None,
                 *, batch: bool = False):
        self.budget, self.price, self.max_tokens, self.cap, self.batch = budget, price, max_tokens, cap, batch
        self._lock = threading.Lock()
        self.requests = self.prompt_tokens = self.completion_tokens = 0
        self.cost_usd = 0.0
        self._held_requests = self._held_tokens = 0
        self._held_cost = 0.0
        self.earlier = {"requests": 0, "tokens": 0, "cost_usd": 0.0}  # collected from earlier builds' batches
        self.stopped: str | None = None  # which limit stopped it, once one did

    def _cost(self, prompt: int, completion: int) -> float:
        return self.price.cost(prompt, completion, batch=self.batch) if self.price else 0.0

    def reserve(self, prompt_estimate: int) -> tuple[int, float] | None:
        """Room for one more request (its reservation), or None when it would pass a limit."""
        tokens = prompt_estimate + self.max_tokens
        cost = self._cost(prompt_estimate, self.max_tokens)
        b = self.budget
        with self._lock:
            if self.stopped:
                return None
            why = None
            if b is not None and b.max_requests is not None and self.requests + 1 > b.max_requests:
                why = f"max_requests {b.max_requests}"
            elif b is not None and b.max_tokens is not None and \
                    self.prompt_tokens + self.completion_tokens + self._held_tokens + tokens > b.max_tokens:
                why = f"max_tokens {b.max_tokens}"
            elif b is not None and b.max_cost_usd is not None and self.cost_usd + self._held_cost + cost > b.max_cost_usd:
                why = f"max_cost_usd {b.max_cost_usd:g}"
            elif self.cap is not None and not self.cap.reserve(cost):
                why = f"--max-cost {self.cap.max_cost_usd:g}"
            if why:
                self.stopped = why
                return None
            self.requests += 1
            self._held_requests += 1
            self._held_tokens += tokens
            self._held_cost += cost
            return tokens, cost

    def settle(self, held: tuple[int, float], prompt_tokens: int | None, completion_tokens: int | None,
               prompt_estimate: int) -> float:
        """The request is over: its reservation becomes what it used (the estimate where the server said
        nothing; no answer, no completion tokens). Returns its cost."""
        prompt = prompt_estimate if prompt_tokens is None else prompt_tokens
        completion = completion_tokens or 0
        cost = self._cost(prompt, completion)
        with self._lock:
            self._held_requests -= 1
            self._held_tokens -= held[0]
            self._held_cost -= held[1]
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.cost_usd += cost
        if self.cap is not None:
            self.cap.settle(held[1], cost)
        return cost

    def account_earlier(self, prompt_tokens: int | None, completion_tokens: int | None) -> float:
        """An answer from a batch an earlier build submitted (and held the budget for): reported as spent in
        this build, not counted against its limits. Returns its cost."""
        cost = self._cost(prompt_tokens or 0, completion_tokens or 0)
        with self._lock:
            self.earlier["requests"] += 1
            self.earlier["tokens"] += (prompt_tokens or 0) + (completion_tokens or 0)
            self.earlier["cost_usd"] += cost
        return cost

    def report(self) -> dict:
        """Spent against the budget, for the summary: settled requests at what they used, plus (batch judges)
        `held`, the reservations of lines still in a batch, and `from_earlier_batches`."""
        with self._lock:
            out = {"spent": {"requests": self.requests, "tokens": self.prompt_tokens + self.completion_tokens,
                             "cost_usd": round(self.cost_usd, 6) if self.price else None}}
            if self._held_requests:
                out["held"] = {"requests": self._held_requests, "tokens": self._held_tokens,
                               "cost_usd": round(self._held_cost, 6) if self.price else None}
            if self.earlier["requests"]:
                out["from_earlier_batches"] = {**self.earlier, "cost_usd": round(self.earlier["cost_usd"], 6)
                                               if self.price else None}
            if self.budget is not None and self.budget.as_dict():
                out["budget"] = self.budget.as_dict()
            if self.stopped:
                out["stopped_by"] = self.stopped
            return out


class BuildCap:
    """`--max-cost USD`: every judge's spending in one build together (judges without a price cost 0)."""

    def __init__(self, max_cost_usd: float | None):
        self.max_cost_usd = max_cost_usd
        self._lock = threading.Lock()
        self.spent = self.held = 0.0

    def reserve(self, cost: float) -> bool:
        with self._lock:
            if self.max_cost_usd is not None and self.spent + self.held + cost > self.max_cost_usd:
                return False
            self.held += cost
            return True

    def settle(self, held: float, cost: float) -> None:
        with self._lock:
            self.held -= held
            self.spent += cost
