"""numpy's BLAS thread pool in a `prefclean` process: one thread, unless the user chose a number.

Why: importing numpy starts its OpenBLAS pool, one thread per core with a buffer each: ~60-90 ms of a cold
build's start on 2 cores (more with more cores), on the way to the first judge request, for a library prefclean
never calls (numpy is there for Arrow buffers, hashing and sums, no matrix products). OpenBLAS reads its thread
count once, when numpy is imported, from OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS or OMP_NUM_THREADS.

Only a process that runs one prefclean command does this (the `prefclean` script, `python -m prefclean.cli`),
before numpy is imported; processes it starts (Ray's local workers, the SQL renderer) inherit the setting. A
notebook calling prefclean.build(), or tests invoking the CLI in-process, keep their numpy as it is.
"""

from __future__ import annotations

import os
import sys

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")  # OpenBLAS's order


def one_thread_for_this_process() -> bool:
    """Set OPENBLAS_NUM_THREADS=1 if numpy is not imported yet and none of OpenBLAS's variables is set;
    whether it did."""
    if "numpy" in sys.modules or any(os.environ.get(name) for name in THREAD_VARIABLES):
        return False
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    return True
