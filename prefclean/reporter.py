"""Reporters: how events (prefclean/events.py) look. `lines()` is the CLI's wording, in one place;
TerminalReporter prints it with a judge progress bar on stderr (plain progress lines now and then when stderr
is not a terminal: CI logs, `| tee`); NotebookReporter shows tqdm.auto bars and only the lines worth reading in
a notebook (warnings, failures, the summary)."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

from .events import (BatchProgress, BuildFinished, Event, ExportFinished, ExportsSkipped, JudgingPaused, JudgingProgress,
                     LeftoversRemoved, ModelFinished, ModelStarted, SourceStaged, SummaryReady, TestFinished, TestsFinished)
from .results import JudgingStats, ModelRun

TEST_LABELS = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "error": "ERROR"}


def progress_enabled() -> bool:
    """Terminal progress bars: on when stderr is a TTY; PREFCLEAN_PROGRESS=1 forces them on, 0 off."""
    forced = os.environ.get("PREFCLEAN_PROGRESS")
    if forced is not None:
        return forced not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def plain_progress_enabled() -> bool:
    """Plain progress lines instead of a bar: stderr is not a terminal, and PREFCLEAN_PROGRESS does not say 0."""
    forced = os.environ.get("PREFCLEAN_PROGRESS")
    return forced is None and not sys.stderr.isatty()


class PlainProgress:
    """Progress as lines for logs, where a bar's carriage returns are noise or nothing: none in the first
    `quiet` seconds (a short step says nothing), then one each `every` seconds, or sooner when another tenth
    is done (at most one per `quiet` seconds).

        judge fake: 1,024/2,000 rows (51%), 51 rows/s, 0 failed, 300 cached, 0 429s
    """

    def __init__(self, write: Callable[[str], None], *, every: float = 10.0, quiet: float = 2.0,
                 clock: Callable[[], float] = time.monotonic):
        self.write, self.every, self.quiet, self.clock = write, every, quiet, clock
        self.started: dict[str, float] = {}
        self.last: dict[str, tuple[float, int]] = {}  # label -> when its last line was written, done then

    def update(self, label: str, done: int, total: int, unit: str = "rows", detail: str = "") -> None:
        now = self.clock()
        start = self.started.setdefault(label, now)
        last_at, last_done = self.last.get(label, (start, 0))
        since = now - last_at
        tenth = total and (done - last_done) * 10 >= total
        if now - start < self.quiet or not (since >= self.every or (tenth and since >= self.quiet)):
            return
        self.last[label] = (now, done)
        share = f" ({done * 100 // total}%)" if total else ""
        self.write(f"{label}: {done:,}/{total:,} {unit}{share}, {_rate(done, now - start, unit)}{detail}")

    def finish(self, label: str) -> None:
        """That step is done: the next one with this label starts quiet again."""
        self.started.pop(label, None)
        self.last.pop(label, None)

    def show(self, event: JudgingProgress | JudgingPaused) -> None:
        label = f"judge {event.judge}"
        if isinstance(event, JudgingPaused):
            self.finish(label)
            return
        s = event.stats
        self.update(label, event.done, event.total,
                    detail=f", {s.failed:,} failed, {s.cached:,} cached, {s.rate_limited:,} 429s")


def plain_lines() -> PlainProgress | None:
    """Plain progress lines on stderr, when they are what the CLI shows (see plain_progress_enabled)."""
    return PlainProgress(lambda line: print(line, file=sys.stderr, flush=True)) if plain_progress_enabled() else None


def model_line(index: int, total: int, m: ModelRun) -> str:
    prefix = f"{index} of {total}"
    if m.status == "skipped":
        why = "--fail-fast:" if m.fail_fast else "upstream"
        return f"{prefix} SKIP {m.materialized} {m.name} ({why} {', '.join(m.blocked_by)} failed)"
    if m.interrupted:
        return f"{prefix} INTERRUPTED {m.materialized} {m.name}: previous version kept"
    if m.status == "error":
        return f"{prefix} ERROR {m.materialized} {m.name}: {m.error}"
    done = "done" if m.rows is None else f"{m.rows} rows"
    return f"{prefix} OK {m.materialized} {m.name} ... {done} in {m.seconds:.2f}s"


def lines(event: Event) -> list[str]:
    """What the CLI prints for an event (progress events print nothing: they move a bar)."""
    if isinstance(event, SourceStaged):
        verb = "staged" if event.staged else "up to date"
        return [f"source {event.name} {verb}: {event.rows} rows in {event.seconds:.2f}s"]
    if isinstance(event, ModelFinished):
        return [model_line(event.index, event.total, event.run), *(f"    {n}" for n in event.run.notes())]
    if isinstance(event, TestFinished):
        t = event.run
        return [f"    {TEST_LABELS[t.status]} {t.name}" + (f" ({t.message})" if t.message else "")]
    if isinstance(event, TestsFinished):
        r = event.result
        return [f"{len(r.tests)} tests: {r.count('pass')} passed, {sum(t.failed for t in r.tests)} failed, "
                f"{r.count('warn')} warned"]
    if isinstance(event, SummaryReady):
        from .summary import format_summary

        return format_summary(event.summary)
    if isinstance(event, ExportFinished):
        e = event.run
        return [f"export {e.name} OK: {e.detail} in {e.seconds:.2f}s" if e.ok else f"export {e.name} ERROR: {e.error}"]
    if isinstance(event, LeftoversRemoved):
        return [f"removed what an interrupted run left: {', '.join(event.items)}"]
    if isinstance(event, ExportsSkipped):
        return [f"exports skipped: {event.reason}"]
    if isinstance(event, BuildFinished):
        r = event.result
        tests_failed = sum(1 for t in r.tests if t.status in ("fail", "error"))
        return [f"Done in {r.seconds:.2f}s. OK={r.count('success')} ERROR={r.count('error')} SKIP={r.count('skipped')} "
                f"TESTS_PASSED={sum(t.status == 'pass' for t in r.tests)} TESTS_FAILED={tests_failed} "
                f"TESTS_WARNED={sum(t.status == 'warn' for t in r.tests)}"]
    return []


def _postfix(stats: JudgingStats) -> str:
    return f"failed={stats.failed} cached={stats.cached} 429s={stats.rate_limited} tokens={stats.tokens}"


def batch_line(event: BatchProgress) -> str:
    return (f"judge {event.judge}: batch {event.batch_id} {event.status}, {event.completed} of {event.total} "
            f"requests done, {event.failed} failed")


class JudgeBars:
    """One progress bar per judge while a model judges, and one per provider batch while it is waited for
    (tqdm, or tqdm.auto's notebook widgets)."""

    def __init__(self, make_bar: Callable[..., object]):
        self.make_bar = make_bar
        self.bars: dict[str, object] = {}
        self.batches: dict[str, object] = {}

    def show_batch(self, event: BatchProgress) -> None:
        bar = self.batches.get(event.batch_id)
        if bar is None:
            bar = self.batches[event.batch_id] = self.make_bar(total=event.total, desc=f"batch {event.batch_id}",
                                                               unit="request")
        bar.total = event.total
        bar.set_postfix_str(f"{event.status} failed={event.failed}", refresh=False)
        bar.update(event.completed + event.failed - bar.n)
        if event.status in ("completed", "failed", "expired", "cancelled"):
            self.batches.pop(event.batch_id).close()

    def show(self, event: JudgingProgress | JudgingPaused) -> None:
        if isinstance(event, JudgingPaused):
            bar = self.bars.pop(event.judge, None)
            if bar is not None:
                bar.close()
            return
        bar = self.bars.get(event.judge)
        if bar is None:
            bar = self.bars[event.judge] = self.make_bar(total=0, desc=f"judge {event.judge}", unit="row")
        bar.total = event.total
        bar.set_postfix_str(_postfix(event.stats), refresh=False)
        bar.update(event.done - bar.n)  # refreshes (tqdm rate-limits its redraws)

    def close(self) -> None:
        for judge in list(self.bars):
            self.show(JudgingPaused(judge))
        for bar in self.batches.values():
            bar.close()
        self.batches.clear()


class TerminalReporter:
    """The CLI's reporter: today's lines on stdout, the judge's bar on stderr when it is a terminal."""

    def __init__(self, echo: Callable[[str], None] = print, *, bars: bool | None = None):
        self.echo = echo
        self.lock = threading.Lock()
        self.bars_on = progress_enabled() if bars is None else bars
        self.bars = JudgeBars(self._bar)
        self.plain = plain_lines() if bars is None and not self.bars_on else None
        self.batch_status: dict[str, str] = {}

    @staticmethod
    def _bar(**kwargs):
        from tqdm import tqdm

        return tqdm(dynamic_ncols=True, leave=True, file=sys.stderr, smoothing=0.1, **kwargs)

    def __call__(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, (JudgingProgress, JudgingPaused)):
                if self.bars_on:
                    self.bars.show(event)
                elif self.plain is not None:
                    self.plain.show(event)
                return
            if isinstance(event, BatchProgress):  # a bar; without one, a line when its status changes
                if self.bars_on:
                    self.bars.show_batch(event)
                elif self.batch_status.get(event.batch_id) != event.status:
                    self.echo(batch_line(event))
                self.batch_status[event.batch_id] = event.status
                return
            if isinstance(event, (ModelFinished, BuildFinished)):
                self.bars.close()
            for line in lines(event):
                self.echo(line)


class NotebookReporter:
    """For Jupyter and scripts: a bar over the models, one per judge, and only the lines that need reading
    (warnings, failures, exports, the summary). The results themselves are in the returned object."""

    def __init__(self):
        self.lock = threading.Lock()
        self.models = None
        self.bars = JudgeBars(self._bar)

    @staticmethod
    def _bar(**kwargs):
        from tqdm.auto import tqdm

        return tqdm(leave=True, **kwargs)

    @staticmethod
    def _write(line: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(line)

    def __call__(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, (JudgingProgress, JudgingPaused)):
                self.bars.show(event)
                return
            if isinstance(event, BatchProgress):
                self.bars.show_batch(event)
                return
            if isinstance(event, ModelStarted):
                if self.models is None:
                    self.models = self._bar(total=event.total, desc="models", unit="model")
                self.models.set_postfix_str(event.name)
                return
            if isinstance(event, ModelFinished):
                self.bars.close()
                if self.models is not None:
                    self.models.update(1)
                    if event.index == event.total:  # before the summary is printed under it
                        self.models.close()
                        self.models = None
                m = event.run
                shown = [] if m.ok else [model_line(event.index, event.total, m)]
                shown += [f"{m.name}: {w}" for w in m.warnings]
            elif isinstance(event, TestFinished):
                shown = lines(event) if event.run.status != "pass" else []
            elif isinstance(event, SourceStaged):
                shown = []
            else:
                if isinstance(event, BuildFinished):
                    self.close()
                shown = lines(event)
            for line in shown:
                self._write(line)

    def close(self) -> None:
        self.bars.close()
        if self.models is not None:
            self.models.close()
            self.models = None


def _rate(done: int, seconds: float, unit: str) -> str:
    """'51 rows/s', or per minute when slower than one a second (an embedded judge: '0 rows/s' said nothing)."""
    per_second = done / max(seconds, 1e-9)
    if per_second >= 1 or done == 0:
        return f"{per_second:,.0f} {unit}/s"
    return f"{per_second * 60:,.1f} {unit}/min"

