"""Send judge requests: bounded concurrency, retries with backoff and jitter, Retry-After, requests- and
tokens-per-minute limits, pauses the provider's x-ratelimit-* headers ask for, the judge's budget, and bounded
re-asks for unparseable answers. Shared by every engine.

All requests of a process go through one asyncio loop in a background thread, so the concurrency limit
holds across the DuckDB threads that call the judge UDF at the same time.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterator

from ..project import JudgeConfig
from ..redact import redact_known
from .budget import LATER, NOT_JUDGED_BUDGET, BudgetGuard, estimate_tokens
from .concurrency import AdaptiveGate, AdaptiveLimit
from .engines.base import Engine, EngineError, GenerationParams
from .tasks import Task, Verdict


class LoopThread:
    """One event loop in a daemon thread for the whole process."""

    _instance: "LoopThread | None" = None
    _lock = threading.Lock()

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="prefclean-judge-loop", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> "LoopThread":
        with cls._lock:
            if cls._instance is None or not cls._instance.thread.is_alive():
                cls._instance = cls()
            return cls._instance

    def submit(self, coro) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro):
        return self.submit(coro).result()


COLLECT_EVERY = 0.01  # seconds between collections: waking per answer took the GIL from the loop each time
SETTLE_POLL = 0.005  # seconds a request that waits for room in its budget waits between two looks


class RequestStream:
    """The requests of one judge UDF call, sent as soon as they are added; outcomes in completion order.

    A few worker coroutines on the judge loop take requests from a queue, so the first requests leave
    while the DuckDB thread still renders and looks up the rest of its batch. One task per request,
    all queued on the dispatcher's semaphore up front, cost ~20 µs each before the first one was sent
    (40 ms for a 2,048-row batch). Outcomes come back through one thread-safe queue: a future per
    request, waited on one by one, costs O(pending) each time one finishes.
    """

    def __init__(self, loop: LoopThread, judge_one: Callable[[Request], Awaitable[Outcome]], workers: int,
                 interrupted: threading.Event):
        self.loop, self.judge_one, self.interrupted = loop, judge_one, interrupted
        self.max_workers = max(1, workers)
        self.expected = 0
        self._finished: queue.SimpleQueue = queue.SimpleQueue()
        self._waiting: collections.deque[Request] = collections.deque()  # loop thread only
        self._workers: set[asyncio.Task] = set()  # loop thread only

    def add(self, requests: list[Request]) -> None:
        """Queue requests for sending (any thread)."""
        if requests:
            self.expected += len(requests)
            self.loop.loop.call_soon_threadsafe(self._extend, list(requests))

    def _extend(self, requests: list[Request]) -> None:
        self._waiting.extend(requests)
        while len(self._workers) < min(self.max_workers, len(self._waiting)):
            task = self.loop.loop.create_task(self._work())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        while self._waiting:
            request = self._waiting.popleft()
            try:
                self._finished.put((True, await self.judge_one(request)))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # a bug in judge_one: the batch fails, as any bug in it would
                self._finished.put((False, exc))

    def outcomes(self) -> Iterator[list[Outcome]]:
        """The outcomes of every request added, a list at a time (all that have arrived since the last);
        Ctrl-C (the interrupted flag) cancels what is queued or in flight and raises KeyboardInterrupt."""
        received = 0
        try:
            while received < self.expected:
                batch = []
                while not batch:
                    if self.interrupted.is_set():
                        raise KeyboardInterrupt
                    try:
                        batch.append(self._finished.get(timeout=0.2))
                    except queue.Empty:
                        continue
                while True:
                    try:
                        batch.append(self._finished.get_nowait())
                    except queue.Empty:
                        break
                received += len(batch)
                for ok, value in batch:
                    if not ok:
                        raise value
                yield [value for _, value in batch]
                if self.expected - received > self.max_workers:  # not the last answers: they are awaited one by one
                    time.sleep(COLLECT_EVERY)
        finally:
            if received < self.expected:
                self.cancel()

    def let_loop_run(self) -> None:
        """Wait until the judge loop has run what was ready (called between chunks of prompt rendering).

        Rendering holds the GIL; the loop thread then got it back only once per switch interval (5 ms), one
        step at a time, so the first requests of a batch opened their connections and left ~100 ms late and
        their answers waited as long. The callback is scheduled twice so that it runs after the I/O callbacks
        that are ready when it arrives."""
        done: Future = Future()
        loop = self.loop.loop
        loop.call_soon_threadsafe(loop.call_soon, done.set_result, None)
        done.result()

    def cancel(self) -> None:
        """Drop what is queued and cancel what is in flight (any thread)."""
        self.loop.loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        self._waiting.clear()
        for task in list(self._workers):
            task.cancel()


def overloaded(error: EngineError) -> bool:
    """An error that says the server has too much to do (429, 5xx, no answer in time): `auto` backs off."""
    status = error.status
    return status == 429 or (status is not None and status >= 500) or (status is None and error.retryable)


@dataclass
class Request:
    key: str
    messages: list[dict]
    n: int
    grammar: str | None = None
    response_format: dict | None = None  # a JSON schema for engines that accept one (structured output)


@dataclass
class Outcome:
    key: str
    verdict: Verdict
    raw: str | None
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    attempts: int = 0
    calls: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict.error is None

    @property
    def not_sent(self) -> bool:
        """Left unjudged by the judge's budget: not a failure, judged by the next build."""
        return self.verdict.error == NOT_JUDGED_BUDGET


@dataclass
class Stats:
    """Counters shown in the progress bar and the run summary. Guarded by a lock."""

    rows: int = 0
    cached: int = 0
    deduplicated: int = 0
    judged: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request_seconds: float = 0.0
    refreshed: int = 0  # rows asked again with --refresh-judgments (the cache not consulted)
    not_judged_budget: int = 0  # rows not sent: the judge's budget (or --max-cost) was spent
    paced_by_headers: int = 0  # pauses the provider's x-ratelimit-* headers asked for
    cost_usd: float = 0.0  # what the requests cost at the judge's `price` (0 without one)
    pending: int = 0  # rows waiting in a provider batch (batching.py)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict:
        with self.lock:
            return {k: v for k, v in self.__dict__.items() if k != "lock"}

    def restore(self, snapshot: dict, names: tuple[str, ...]) -> None:
        """Put these counters back to a snapshot's values (a model's rows counted again by its second pass)."""
        with self.lock:
            for name in names:
                setattr(self, name, snapshot[name])


class Dispatcher:
    """Judges requests for one named judge."""

    def __init__(self, judge: JudgeConfig, engine: Engine, task: Task, stats: Stats, *, use_grammar: bool = True,
                 budget: BudgetGuard | None = None):
        self.judge, self.engine, self.task, self.stats = judge, engine, task, stats
        self.budget = budget or BudgetGuard(judge.budget, judge.price, judge.max_tokens)
        self.params = GenerationParams(max_tokens=judge.max_tokens, temperature=judge.temperature,
                                       seed=judge.seed, top_p=judge.top_p)
        self.use_grammar = use_grammar
        slots = 1 if engine.serial else judge.most_in_flight() * max(1, len(judge.base_urls))
        self.slots = slots
        # concurrency: auto, for an engine that does not keep a limit per replica itself
        self.gate = AdaptiveGate(AdaptiveLimit(maximum=slots)) if (
            getattr(judge, "concurrency", None) == "auto" and not engine.serial and not engine.limits_replicas) else None
        self._semaphore: asyncio.Semaphore | None = None
        self._paused_until = 0.0  # set by a 429: every request waits, not just the one that got it
        self._next_slot = 0.0  # requests-per-minute pacing
        self._next_token_slot = 0.0  # tokens-per-minute pacing
        self.in_flight = 0
        self.max_in_flight = 0
        # Set when no request to this judge can succeed: the rest are not sent, and the model fails.
        self.fatal: EngineError | None = None
        self._answered = False  # any answer at all: then an unreachable server is a blip, not a wrong URL
        self._unreachable_streak = 0

    async def _wait_turn(self, tokens: int) -> None:
        """Wait out a pause, then take the next requests-per-minute and tokens-per-minute slots (a request
        counts its prompt and `max_tokens`, as providers count it against a token limit)."""
        now = time.monotonic()
        if self._paused_until > now:
            await asyncio.sleep(self._paused_until - now)
        waits = []
        now = time.monotonic()
        if self.judge.requests_per_minute:
            slot = max(now, self._next_slot)
            self._next_slot = slot + 60.0 / self.judge.requests_per_minute
            waits.append(slot - now)
        if self.judge.tokens_per_minute:
            slot = max(now, self._next_token_slot)
            self._next_token_slot = slot + 60.0 * tokens / self.judge.tokens_per_minute
            waits.append(slot - now)
        if waits and max(waits) > 0:
            await asyncio.sleep(max(waits))

    def _note_rate_limit(self, rate_limit, tokens: int) -> None:
        """The provider said what is left: pause every request until its reset when the next would not fit."""
        wait = rate_limit.wait_for(tokens) if rate_limit is not None else 0.0
        if wait > 0:
            self.stats.add(paced_by_headers=1)
            self._paused_until = max(self._paused_until, time.monotonic() + wait)

    def _backoff(self, attempt: int, error: EngineError) -> float:
        if error.retry_after is not None:
            return min(max(error.retry_after, 0.0), 300.0) + random.uniform(0, 0.1)
        return min(30.0, 0.25 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)

    def _note_failure(self, error: EngineError) -> None:
        """A rejected key or unknown model is fatal at once; a server that never answered and keeps refusing
        connections is taken to be the wrong URL after a few rounds of retries (instead of every row retrying)."""
        if error.fatal:
            self.fatal = self.fatal or error
        elif error.status is None and not self._answered:
            self._unreachable_streak += 1
            if self._unreachable_streak >= max(8, 2 * self.slots) * (self.judge.max_retries + 1):
                self.fatal = self.fatal or error

    async def judge_one(self, request: Request) -> Outcome:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.slots)
        calls: list[dict] = []
        transport_failures = parse_failures = 0
        attempt = 0
        last_text: str | None = None
        last_error = "not attempted"
        last_verdict: Verdict | None = None
        tokens: list[int | None] = [None, None]  # summed over attempts; None while no answer said
        latency = 0.0
        grammar = request.grammar if self.use_grammar else None
        prompt = self.budget.prompt(request.messages)  # counted once for every attempt
        # what pacing goes by: the four-characters estimate, which is the prompt's count with no tokenizer
        estimate = prompt.exact if self.budget.counter is None else estimate_tokens(request.messages)
        schema = {"response_format": request.response_format} if request.response_format else {}
        while True:
            if self.fatal is not None:
                last_error = str(self.fatal)
                break
            held = self.budget.reserve(prompt)
            while held is LATER:  # no room beside the requests in flight: wait for one of them to be answered
                await asyncio.sleep(SETTLE_POLL)
                held = self.budget.reserve(prompt)
            if held is None:  # nothing more may be sent: the row waits for the next build
                return Outcome(request.key, Verdict(None, None, None, NOT_JUDGED_BUDGET), None, self.engine.model,
                               tokens[0], tokens[1], latency or None, attempt, calls)
            attempt += 1
            try:
                await self._wait_turn(estimate + self.params.max_tokens)
                async with self._semaphore:
                    # A 429 may arrive while this request queued for a slot: honour it before sending.
                    while self._paused_until > time.monotonic():
                        await asyncio.sleep(self._paused_until - time.monotonic())
                    gated = await self.gate.acquire() if self.gate is not None else 0
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                    started = time.perf_counter()
                    error = None
                    try:
                        completion = await self.engine.complete(request.messages, self.params, grammar=grammar,
                                                                **schema)
                    except EngineError as exc:
                        completion, error = None, exc
                    except Exception as exc:  # an engine bug must cost one row, not the build
                        completion = None
                        error = EngineError(f"{type(exc).__name__}: {exc}", retryable=False)  # (masked there)
                    finally:
                        self.in_flight -= 1
                        elapsed = time.perf_counter() - started
                        if self.gate is not None:
                            self.gate.release(elapsed, gated, dropped=error is not None and overloaded(error))
            except BaseException:  # cancelled (a failed batch, Ctrl-C): its hold must not outlive it, or a later
                self.budget.settle(held, None, None)  # request under a token or cost limit would wait for ever
                raise
            answer = completion if error is None else None
            cost = self.budget.settle(held, answer.prompt_tokens if answer else 0,
                                      answer.completion_tokens if answer else 0)
            self._note_rate_limit(getattr(answer or error, "rate_limit", None), estimate + self.params.max_tokens)
            self.stats.add(requests=1, request_seconds=elapsed, cost_usd=cost)
            call = {"key": request.key, "judge": self.judge.name, "model": self.engine.model, "attempt": attempt,
                    "latency_ms": elapsed * 1000, "http_status": None, "prompt_tokens": None, "completion_tokens": None,
                    "cost_usd": cost if self.judge.price else None}
            if error is not None:
                calls.append({**call, "status": "error", "error": str(error), "http_status": error.status})
                last_error = str(error)
                self._note_failure(error)
                if error.status == 429:
                    self.stats.add(rate_limited=1)
                    if error.retry_after:
                        self._paused_until = max(self._paused_until, time.monotonic() + error.retry_after)
                transport_failures += 1
                if error.retryable and transport_failures <= self.judge.max_retries:
                    self.stats.add(retries=1)
                    await asyncio.sleep(self._backoff(transport_failures, error))
                    continue
                break
            self._answered, self._unreachable_streak = True, 0
            latency += elapsed * 1000
            for i, count in enumerate((completion.prompt_tokens, completion.completion_tokens)):
                if count is not None:
                    tokens[i] = (tokens[i] or 0) + count
            # the record and the call log keep what the server said (None: nothing readable); the build's totals,
            # like its cost, count a prompt it said nothing of as the budget counted it
            counted = completion.prompt_tokens if completion.prompt_tokens is not None else held.prompt.held
            self.stats.add(prompt_tokens=counted, completion_tokens=completion.completion_tokens or 0)
            # A server may echo a key even in a 200: masked before the answer is read (rationales) or stored (raw).
            last_text = redact_known(completion.text)
            try:
                verdict = self.task.parse(last_text, request.n)
            except Exception as exc:  # a parser bug costs this row, like an unparseable answer
                verdict = Verdict(None, None, None, f"parser error: {type(exc).__name__}: {exc}")
            last_verdict = verdict
            calls.append({**call, "status": "ok" if verdict.error is None else "unparsed", "error": verdict.error,
                          "http_status": 200, "prompt_tokens": completion.prompt_tokens,
                          "completion_tokens": completion.completion_tokens})
            if verdict.error is None:
                return Outcome(request.key, verdict, last_text, completion.model or self.engine.model,
                               tokens[0], tokens[1], latency, attempt, calls)
            parse_failures += 1
            if parse_failures > self.judge.parse_retries:
                break
            self.stats.add(retries=1)
        if last_verdict is not None:
            verdict = Verdict(last_verdict.ratings, last_verdict.rationales, last_verdict.winner,
                              f"unparseable answer after {parse_failures} tries: {last_verdict.error}")
        else:
            verdict = Verdict(None, None, None, last_error)
        return Outcome(request.key, verdict, last_text, self.engine.model, tokens[0], tokens[1],
                       latency or None, attempt, calls)
