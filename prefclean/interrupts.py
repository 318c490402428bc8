"""Ctrl-C during a build, seen by threads it never reaches.

DuckDB calls UDFs (the judge) on its own threads, which a KeyboardInterrupt never reaches: while a build
runs, a SIGINT handler chained to the one in place raises `INTERRUPTED`, which judge batches check, so they
stop at once instead of finishing 2,048 rows. The handler is installed when a build starts and the previous
one put back when it ends: importing prefclean changes nothing, and a notebook's own handler comes back.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable

INTERRUPTED = threading.Event()  # set by Ctrl-C during a build; cleared when the next one starts


def watch_interrupts() -> Callable[[], None]:
    """Install the handler (on the main thread only: elsewhere signals cannot be handled); returns the
    function that puts the previous handler back."""
    INTERRUPTED.clear()
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN or getattr(previous, "prefclean_build", False):
        return lambda: None  # ignored on purpose, or a build inside a build: the outer one restores

    def on_sigint(signum, frame):
        INTERRUPTED.set()
        if callable(previous):
            return previous(signum, frame)
        raise KeyboardInterrupt

    on_sigint.prefclean_build = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGINT, on_sigint)

    def restore() -> None:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is on_sigint:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)

    return restore
