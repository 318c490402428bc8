"""`concurrency: auto`: find how many requests a server takes in flight, instead of making the user guess.

A server has a capacity: below it, more requests in flight mean more answers per second at the same latency;
past it, requests only queue (the latency climbs, throughput stays flat) and then get refused (429, 5xx,
time-outs). The limit here is AIMD on those signals, as TCP's congestion window and Netflix's
concurrency-limits do it: per window of about one round trip (as many answers as the limit),

- any refusal or time-out: multiply the limit by `backoff` (once per window, however many arrive);
- latency well above the lowest seen recently (`tolerance`): the server is queueing; shrink to where the
  latency would be `grow_below` times that lowest if it grows with the requests in flight (at most halving);
- latency near that lowest (`grow_below`) and the limit in use: grow, doubling until the first sign of
  congestion (slow start), then by about √limit / 2 per window; in between, hold. A short queue at the
  server is what keeps it busy while the client is slow to send the next request.

"The lowest seen recently" is the baseline: once every server has a queue, no answer comes back at the
unloaded latency any more, and a remembered low would drift up with the queue. So, as BBR probes the
round-trip time, every `probe_every` windows the limit is halved for two windows, which drains the queue and
measures the unloaded latency again (a few % of throughput); the baseline is then what the probe saw. Two
windows in a row far above the baseline probe at once (and a probe that finds it much higher starts over
with slow start): a server that became slower for everyone (another
model loaded on it) is not taken for a queue for long.

`AdaptiveLimit` is the arithmetic alone (fed latencies and errors; deterministic, no clock); `AdaptiveGate`
holds requests on an asyncio loop to it. One per replica: each server has its own capacity.
"""

from __future__ import annotations

import asyncio
import collections
import statistics

AUTO_INITIAL = 4
AUTO_MAX = 64  # without max_concurrency: enough for most servers, not enough to flood a shared API


class AdaptiveLimit:
    """How many requests may be in flight now; `sample()` after each one."""

    def __init__(self, initial: int = AUTO_INITIAL, *, minimum: int = 1, maximum: int = AUTO_MAX,
                 grow_below: float = 1.3, tolerance: float = 1.6, backoff: float = 0.7, probe_every: int = 50):
        self.minimum, self.maximum = max(1, minimum), max(1, minimum, maximum)
        self.value = float(min(max(initial, self.minimum), self.maximum))
        self.grow_below, self.tolerance, self.backoff = grow_below, tolerance, backoff
        self.slow_start = True
        self._window: list[float] = []
        self._peak = 0  # most in flight seen in this window
        self._cut = False  # already cut in this window
        self._seen = 0  # answers and drops in this window
        self.probe_every = probe_every
        self._lows: list[float] = []  # each window's lowest latency since the last probe (the probe's included)
        self._probe_lows: list[float] = []
        self._windows = 0
        self._probing = 0  # windows left at half the limit
        self._slow_windows = 0  # windows in a row far above the baseline
        self.history: list[int] = []  # the limit after each window, for tests and the benchmark

    @property
    def limit(self) -> int:
        if self._probing:
            return max(self.minimum, int(self.value / 2))
        return int(self.value)

    @property
    def baseline(self) -> float | None:
        """The lowest latency since before the last probe: what an unloaded server answers in."""
        return min(self._lows) if self._lows else None

    def sample(self, latency: float, in_flight: int, *, dropped: bool = False) -> None:
        """One request finished after `latency` seconds with `in_flight` requests out (itself included);
        `dropped`: refused (429, 5xx) or timed out."""
        self._peak = max(self._peak, in_flight)
        if dropped:
            if not self._cut:
                self.value = max(self.minimum, self.value * self.backoff)
                self._cut, self.slow_start = True, False
        else:
            self._window.append(latency)
        self._seen += 1
        if self._seen >= max(self.limit, 4):
            self._close_window()

    def _close_window(self) -> None:
        window, peak, cut = self._window, self._peak, self._cut
        self._window, self._peak, self._cut, self._seen = [], 0, False, 0
        self._windows += 1
        if self._probing:
            self._probe_lows += [min(window)] if window else []
            self._probing -= 1
            if not self._probing and self._probe_lows:
                before = self.baseline
                self._lows, self._probe_lows = self._probe_lows, []
                if before and self.baseline > before * self.tolerance:  # a slower server, not a queue
                    self.slow_start = True
        else:
            if window:
                self._lows.append(min(window))
            if window and not cut:
                self._adjust(statistics.median(window), peak)
            if self._windows % self.probe_every == 0 or self._slow_windows >= 2:
                self._probing, self._slow_windows = 2, 0
        self.history.append(self.limit)

    def _adjust(self, typical: float, peak: int) -> None:
        base = self.baseline
        self._slow_windows = self._slow_windows + 1 if typical > base * self.tolerance else 0
        if typical > base * self.tolerance:
            self.value = max(self.minimum, self.value * max(0.5, self.grow_below * base / typical))
            self.slow_start = False
        elif typical > base * self.grow_below:
            self.slow_start = False  # queueing starts: from here on, grow slowly
        elif peak >= self.limit * 0.8:
            step = self.value if self.slow_start else max(1.0, self.value ** 0.5 / 2)
            self.value = min(self.maximum, self.value + step)


class AdaptiveGate:
    """Requests wait here for a place under their `AdaptiveLimit`; `release` reports how each went.
    Lives on the judge loop (not thread-safe)."""

    def __init__(self, limit: AdaptiveLimit):
        self.limit = limit
        self.in_flight = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    async def acquire(self) -> int:
        """Wait for a place; the number in flight with this one."""
        while self.in_flight >= self.limit.limit:
            future = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._wake()  # pass on the place it was given
                raise
        self.in_flight += 1
        return self.in_flight

    def release(self, latency: float, in_flight: int, *, dropped: bool = False) -> None:
        self.in_flight -= 1
        self.limit.sample(latency, in_flight, dropped=dropped)
        self._wake()

    def _wake(self) -> None:
        room = self.limit.limit - self.in_flight
        while room > 0 and self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                room -= 1
