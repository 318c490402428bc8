"""A judge's progress during a model, sent to the build's reporter as events (done/total and the counters):
the CLI draws a terminal bar from them (prefclean/reporter.py), a notebook a tqdm.auto one."""

from __future__ import annotations

import threading

from ..events import JudgingPaused, JudgingProgress, Reporter
from ..results import JudgingStats


class JudgeProgress:
    """Thread-safe; the total grows as DuckDB hands the judge more rows."""

    def __init__(self, judge: str, report: Reporter):
        self.judge, self.report = judge, report
        self._lock = threading.Lock()
        self.done = self.total = 0
        self.open = False

    def add_total(self, n: int) -> None:
        with self._lock:
            self.total += n
            self.open = True

    def advance(self, n: int, stats: dict) -> None:
        with self._lock:
            self.done += n
            self.open = True
            # under the lock, so a reporter never sees the counts go backwards
            self.report(JudgingProgress(self.judge, self.done, self.total, JudgingStats.from_counts(stats)))

    def close(self) -> None:
        """The model is done: the next one starts from zero."""
        with self._lock:
            if self.open:
                self.report(JudgingPaused(self.judge))
            self.done = self.total = 0
            self.open = False
