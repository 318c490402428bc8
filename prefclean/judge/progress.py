"""A judging progress bar: done/total, rate, errors, cache hits, tokens. Quiet when stderr is not a TTY
(set PREFCLEAN_PROGRESS=1 to force it on, 0 to force it off)."""

from __future__ import annotations

import os
import sys
import threading

from tqdm import tqdm


def progress_enabled() -> bool:
    forced = os.environ.get("PREFCLEAN_PROGRESS")
    if forced is not None:
        return forced not in ("0", "false", "no", "")
    return sys.stderr.isatty()


class JudgeProgress:
    """Thread-safe; the total grows as DuckDB hands the judge more rows."""

    def __init__(self, label: str):
        self.label = label
        self._lock = threading.Lock()
        self._bar: tqdm | None = None
        self.enabled = progress_enabled()

    def _ensure(self) -> tqdm:
        if self._bar is None:
            self._bar = tqdm(total=0, desc=self.label, unit="row", dynamic_ncols=True, leave=True,
                             disable=not self.enabled, file=sys.stderr, smoothing=0.1)
        return self._bar

    def add_total(self, n: int) -> None:
        with self._lock:
            bar = self._ensure()
            bar.total += n
            bar.refresh()

    def advance(self, n: int, stats: dict) -> None:
        with self._lock:
            bar = self._ensure()
            bar.update(n)
            bar.set_postfix_str(
                f"failed={stats['failed']} cached={stats['cached']} 429s={stats['rate_limited']} "
                f"tokens={stats['prompt_tokens'] + stats['completion_tokens']}", refresh=False)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
