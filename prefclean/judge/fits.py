"""What the budgets let through, for `prefclean plan`: the build's own guards (budget.py) run over the plan's
counted prompts, so the plan and the build stop at the same request.

A judge's requests are reserved one after another in the order the plan met them, each settling before the
next at the completion the plan expects (the cache's mean, else `max_tokens`): `requests` is what a build
sends at that completion, one request at a time. `requests_at_least` holds every request at `max_tokens` and
settles none, which is what a batch judge does (and the most any build can hold at once): at least that many
are sent whatever the answers' lengths and the concurrency. `--max-cost` is shared by every judge, taken in
the plan's order (the order the build meets them; judges asked by one model share it as their requests
interleave, which the plan cannot know).
"""

from __future__ import annotations

from .budget import LATER, BudgetGuard, BuildCap, PromptTokens


def limited(config, max_cost: float | None) -> bool:
    """Whether any limit applies to this judge in a build with this --max-cost."""
    return bool(config.budget is not None and config.budget.as_dict()) or (
        max_cost is not None and config.price is not None)


def _run(guard: BudgetGuard, prompts: list[int], completion: int, settle: bool) -> int:
    """How many of these prompts the guard lets through (each settled at `completion` when `settle`)."""
    sent = 0
    for tokens in prompts:
        hold = guard.reserve(PromptTokens(exact=tokens))
        if hold is None or hold is LATER:  # (LATER: only while holding all, where none would be answered)
            break
        sent += 1
        if settle:
            guard.settle(hold, tokens, completion)
    return sent


def within_budgets(judges: list[tuple], max_cost: float | None) -> dict[str, dict | None]:
    """Per judge (name, config, prompt tokens in the order they are sent, expected completion per request,
    batch): {requests, requests_at_least, cost_usd, stopped_by}, or None when no limit applies to it."""
    cap, worst_cap = BuildCap(max_cost), BuildCap(max_cost)
    out: dict[str, dict | None] = {}
    for name, config, prompts, completion, batch in judges:
        if not limited(config, max_cost):
            out[name] = None
            continue
        prompts = list(prompts)
        guard = BudgetGuard(config.budget, config.price, config.max_tokens, cap, batch=batch)
        worst = BudgetGuard(config.budget, config.price, config.max_tokens, worst_cap, batch=batch)
        sent = _run(guard, prompts, completion, settle=not batch)
        at_least = _run(worst, prompts, config.max_tokens, settle=False)
        cost = config.price.cost(sum(prompts[:sent]), round(completion * sent), batch=batch) if config.price else None
        out[name] = {"requests": sent, "requests_at_least": min(at_least, sent),
                     "cost_usd": None if cost is None else round(cost, 6),
                     "stopped_by": guard.stopped if sent < len(prompts) else None}
    return out
