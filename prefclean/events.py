"""What a build tells whoever watches it, as typed events (never pre-formatted lines): the CLI prints them
as its familiar lines, a notebook shows progress bars, a test can collect them. Like dbt-core's events and
SQLMesh's Console, the engine only fires events; the Reporter decides what they look like.

A Reporter may be called from several threads at once (judge progress comes from DuckDB's threads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Union

from .results import BuildResult, ExportRun, JudgingStats, ModelRun, TestRun, TestsResult


@dataclass(frozen=True)
class SourceStaged:
    name: str
    rows: int
    staged: bool  # False: already up to date, nothing read
    seconds: float


@dataclass(frozen=True)
class ModelStarted:
    index: int  # 1-based position in this run
    total: int
    name: str
    materialized: str


@dataclass(frozen=True)
class ModelFinished:
    index: int
    total: int
    run: ModelRun


@dataclass(frozen=True)
class TestFinished:
    __test__ = False  # not a pytest test class

    run: TestRun


@dataclass(frozen=True)
class TestsFinished:
    """`prefclean test` is over."""

    __test__ = False

    result: TestsResult


@dataclass(frozen=True)
class JudgingProgress:
    """A judge's rows so far in the running model: `done` of `total` (the total grows as DuckDB hands the
    judge more rows); `stats` are this judge's counters in this build."""

    judge: str
    done: int
    total: int
    stats: JudgingStats


@dataclass(frozen=True)
class JudgingPaused:
    """The model that called this judge is done: close its progress bar (a later model opens a new one)."""

    judge: str


@dataclass(frozen=True)
class BatchProgress:
    """A provider batch of a judge (engine openai-batch) as last seen: its status and request counts."""

    judge: str
    batch_id: str
    status: str  # validating | in_progress | finalizing | completed | failed | expired | cancelling | cancelled
    completed: int
    failed: int
    total: int


@dataclass(frozen=True)
class SummaryReady:
    summary: dict[str, Any]  # see prefclean/summary.py


@dataclass(frozen=True)
class ExportFinished:
    run: ExportRun


@dataclass(frozen=True)
class ExportsSkipped:
    reason: str


@dataclass(frozen=True)
class LeftoversRemoved:
    """A build removed what a killed run left: side tables (schema.name) and temporary export files."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class BuildFinished:
    result: BuildResult


Event = Union[SourceStaged, ModelStarted, ModelFinished, TestFinished, TestsFinished, JudgingProgress,
              JudgingPaused, BatchProgress, SummaryReady, ExportFinished, ExportsSkipped, LeftoversRemoved, BuildFinished]


class Reporter(Protocol):
    def __call__(self, event: Event) -> None:
        """Show (or record) one event. Must be thread-safe and must not raise."""


def quiet(event: Event) -> None:
    """A reporter that shows nothing."""
