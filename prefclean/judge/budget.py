"""What a judge costs and how much of it one build may spend: `price:` and `budget:` in prefclean.yml.

    judges:
      gpt:
        engine: openai
        price: {input_per_million: 0.15, output_per_million: 0.60}   # USD per million tokens
        budget: {max_requests: 20000, max_tokens: 5000000, max_cost_usd: 10}

`budget.max_tokens` counts prompt and completion tokens together; the judge's own `max_tokens` is the
longest answer of one request (an older key, which is why the budget's keys sit under `budget:`).

A request is sent only when it fits what is left: each request in flight holds a reservation of its
prompt's tokens plus `max_tokens` for the answer (the most it can cost), replaced by what the server reports
once it answers. So concurrent requests cannot overshoot a budget together. A request that does not fit beside
the reservations in flight waits for them to be answered (most use a fraction of `max_tokens`), so near its end
a budget sends one request at a time, as `prefclean plan` counts it; what does not fit with nothing in flight
is not sent: its rows are "not judged: budget" (not failed, not cached) and the next build judges them.

The prompt's tokens are counted as `prefclean plan` counts them (tokens.py: the GGUF's vocabulary, a
`tokenizer:` file, else about four characters a token), so near its end a budget sends exactly what the plan
says fits. An exact count costs far more than the request's other client work (0.2-2 ms against ~0.2 ms), and
only matters where it decides, so a judge whose limits count tokens holds a cheap upper bound (the chat
markup counted once per list of roles, plus two tokens per byte of text) while that fits; the first
reservation a bound does not fit counts the prompts held and its own exactly, and from then on the guard
counts every prompt. A judge whose limits count no tokens (none, or only `max_requests`) loads no tokenizer.

A batch judge (`engine: openai-batch`) reserves each line the same way when it records it for submission,
before anything is uploaded (counted exactly: every line is held until its batch is collected), at the batch price (`price.batch_discount` off), so the lines a budget cannot
hold are never submitted. A line collected in the same build settles to the `usage` its output reports; a
line still in a batch when the build ends stays held (the summary says so). Answers collected from an
earlier build's batch are reported as spent by the build that collects them, but count against the budget
of the build that submitted them (which held them), not this one's.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from ..config.judges import Budget, Price

NOT_JUDGED_BUDGET = "not judged: budget"
LATER = "later"  # BudgetGuard.reserve: no room beside the requests in flight; ask again once one is answered
BOUND_SLACK = 8  # tokens a bound adds for a template's boundary effects (a BOS, a merge across the markup)


def estimate_tokens(messages: list[dict]) -> int:
    """Prompt tokens when no tokenizer is at hand: about four characters a token, over the messages' text
    as it is sent (joined by newlines). Plan and budget use the same rule."""
    return len("\n".join(str(m.get("content") or "") for m in messages)) // 4


class PromptTokens:
    """One request's prompt tokens as its budget sees them: `exact` once counted (once per prompt, whatever
    the retries), `bound` (at least the exact count) until then."""

    __slots__ = ("messages", "exact", "bound")

    def __init__(self, messages: list[dict] | None = None, exact: int | None = None, bound: int | None = None):
        self.messages, self.exact, self.bound = messages, exact, bound

    @property
    def held(self) -> int:
        return self.exact if self.exact is not None else self.bound

    def count(self, counter) -> int:
        if self.exact is None:
            self.exact = counter.count(self.messages)
        return self.exact


class Hold:
    """One reservation: the request's prompt and what it holds (its prompt + max_tokens, and their cost)."""

    __slots__ = ("prompt", "tokens", "cost", "exact")

    def __init__(self, prompt: PromptTokens, tokens: int, cost: float):
        self.prompt, self.tokens, self.cost, self.exact = prompt, tokens, cost, prompt.exact is not None


def counts_tokens(budget: Budget | None, price: Price | None, cap: "BuildCap | None") -> bool:
    """Whether any limit on this judge counts tokens (then its prompts are counted as the plan counts them)."""
    return (budget is not None and (budget.max_tokens is not None or budget.max_cost_usd is not None)) or (
        cap is not None and cap.max_cost_usd is not None and price is not None)


def budget_guard(config, root: Path | None, cap: "BuildCap | None", *, batch: bool = False) -> "BudgetGuard":
    """A judge's guard for one build, with the token counter `prefclean plan` uses for it when a limit counts
    tokens (a missing `tokenizer:` file is then an error naming it, as in the plan)."""
    counter = None
    if counts_tokens(config.budget, config.price, cap):
        from .tokens import Estimate, token_counter

        found = token_counter(config, root)
        counter = None if isinstance(found, Estimate) else found
    return BudgetGuard(config.budget, config.price, config.max_tokens, cap, batch=batch, counter=counter)


class BudgetGuard:
    """One judge's spending during one build, against its budget (and the build's --max-cost, shared by
    every judge through `BuildCap`). Thread-safe: the judge loop reserves, DuckDB threads read. `counter`:
    the judge's exact token counter (tokens.py), None for the four-characters estimate."""

    def __init__(self, budget: Budget | None, price: Price | None, max_tokens: int, cap: "BuildCap | None" = None,
                 *, batch: bool = False, counter=None):
        self.budget, self.price, self.max_tokens, self.cap, self.batch = budget, price, max_tokens, cap, batch
        self.counter = counter
        self._lock = cap.lock if cap is not None else threading.RLock()  # one lock for the guards a cap joins
        if cap is not None:
            cap.guards.append(self)
        self.requests = self.prompt_tokens = self.completion_tokens = 0
        self.cost_usd = 0.0
        self._held_requests = self._held_tokens = 0
        self._held_cost = 0.0
        self._holds: set[Hold] = set()  # those holding a bound (not yet counted exactly)
        self._markup: dict[tuple, int] = {}  # roles -> the chat markup's tokens (the messages without text)
        self.counting = False  # set once a bound did not fit: every prompt is counted exactly from then on
        self.earlier = {"requests": 0, "tokens": 0, "cost_usd": 0.0}  # collected from earlier builds' batches
        self.stopped: str | None = None  # which limit stopped it, once one did

    def _cost(self, prompt: int, completion: int) -> float:
        return self.price.cost(prompt, completion, batch=self.batch) if self.price else 0.0

    def prompt(self, messages: list[dict], *, exact: bool = False) -> PromptTokens:
        """This prompt's tokens for its reservations (count once per request, not per attempt): exact with no
        tokenizer (the estimate), with `exact` or once counting; else a bound until a reservation needs more."""
        if self.counter is None:
            return PromptTokens(exact=estimate_tokens(messages))
        if exact or self.counting:
            return PromptTokens(exact=self.counter.count(messages))
        roles = tuple(str(m.get("role")) for m in messages)
        markup = self._markup.get(roles)
        if markup is None:
            try:
                markup = self.counter.count([{"role": r, "content": ""} for r in roles])
            except Exception:  # a chat template that refuses empty messages: this list of roles is counted exactly
                markup = -1
            self._markup[roles] = markup
        if markup < 0:
            return PromptTokens(exact=self.counter.count(messages))
        text = sum(len(str(m.get("content") or "").encode()) for m in messages)
        return PromptTokens(messages, bound=markup + 2 * text + BOUND_SLACK)

    def reserve(self, prompt: PromptTokens) -> Hold | str | None:
        """Room for one more request (its reservation); LATER when it does not fit beside the requests in flight
        but may once they are answered (each holds `max_tokens` and most answers use a fraction); None when it
        would pass a limit, for good. When a bound is what does not fit, the prompts held and this one are
        counted exactly and the question asked again."""
        with self._lock:
            if self.stopped:
                return None
            why = self._refusal(prompt.held)
            if why and (prompt.exact is None or self._has_bounds()):
                self._count_exactly(prompt)
                why = self._refusal(prompt.held)
            if why:
                if self._may_settle(why):
                    return LATER
                self.stopped = why
                return None
            hold = Hold(prompt, prompt.held + self.max_tokens, self._cost(prompt.held, self.max_tokens))
            if not hold.exact:
                self._holds.add(hold)
            if self.cap is not None:
                self.cap.held += hold.cost
            self.requests += 1
            self._held_requests += 1
            self._held_tokens += hold.tokens
            self._held_cost += hold.cost
            return hold

    def _refusal(self, prompt: int) -> str | None:
        """The limit one more request of `prompt` tokens would pass, if any."""
        tokens, cost, b = prompt + self.max_tokens, self._cost(prompt, self.max_tokens), self.budget
        if b is not None and b.max_requests is not None and self.requests + 1 > b.max_requests:
            return f"max_requests {b.max_requests}"
        if b is not None and b.max_tokens is not None and \
                self.prompt_tokens + self.completion_tokens + self._held_tokens + tokens > b.max_tokens:
            return f"max_tokens {b.max_tokens}"
        if b is not None and b.max_cost_usd is not None and self.cost_usd + self._held_cost + cost > b.max_cost_usd:
            return f"max_cost_usd {b.max_cost_usd:g}"
        if self.cap is not None and not self.cap.fits(cost):
            return f"--max-cost {self.cap.max_cost_usd:g}"
        return None

    def _may_settle(self, why: str) -> bool:
        """Whether requests in flight may yet leave room for the one `why` refused: held by a judge that
        settles as it goes (a batch judge's lines are held until their batch is collected, after the model)."""
        if why.startswith("max_requests"):
            return False  # a request counts when it is sent, whatever it uses
        guards = self.cap.guards if why.startswith("--max-cost") else (self,)
        return any(g._held_requests and not g.batch for g in guards)

    def _has_bounds(self) -> bool:
        return any(g._holds for g in (self.cap.guards if self.cap is not None else (self,)))

    def _count_exactly(self, prompt: PromptTokens) -> None:
        """Near a limit: this prompt and every prompt held with a bound (this judge's and, under --max-cost,
        every judge's) counted exactly, their reservations made exact; this guard counts exactly from now on."""
        if self.counter is not None:
            prompt.count(self.counter)
            self.counting = True
        for guard in (self.cap.guards if self.cap is not None else (self,)):
            guard._exact_holds()

    def _exact_holds(self) -> None:
        for hold in self._holds:
            exact = hold.prompt.count(self.counter)
            tokens, cost = exact + self.max_tokens, self._cost(exact, self.max_tokens)
            self._held_tokens += tokens - hold.tokens
            self._held_cost += cost - hold.cost
            if self.cap is not None:
                self.cap.held += cost - hold.cost
            hold.tokens, hold.cost, hold.exact = tokens, cost, True
        self._holds.clear()

    def settle(self, held: Hold, prompt_tokens: int | None, completion_tokens: int | None) -> float:
        """The request is over: its reservation becomes what it used (the prompt counted as the plan counts it
        where the server said nothing; no answer, no completion tokens). Returns its cost."""
        prompt = held.prompt.count(self.counter) if prompt_tokens is None and self.counter is not None else (
            held.prompt.held if prompt_tokens is None else prompt_tokens)
        completion = completion_tokens or 0
        cost = self._cost(prompt, completion)
        with self._lock:
            self._holds.discard(held)
            self._held_requests -= 1
            self._held_tokens -= held.tokens
            self._held_cost -= held.cost
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.cost_usd += cost
            if self.cap is not None:
                self.cap.held -= held.cost
                self.cap.spent += cost
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
    """`--max-cost USD`: every judge's spending in one build together (judges without a price cost 0). Its
    guards share its lock, so that one of them near the cap can make every judge's reservations exact."""

    def __init__(self, max_cost_usd: float | None):
        self.max_cost_usd = max_cost_usd
        self.lock = threading.RLock()
        self.guards: list[BudgetGuard] = []
        self.spent = self.held = 0.0

    def fits(self, cost: float) -> bool:
        with self.lock:
            return self.max_cost_usd is None or self.spent + self.held + cost <= self.max_cost_usd
