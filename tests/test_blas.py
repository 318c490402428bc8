"""numpy's OpenBLAS pool is one thread in a process that runs one prefclean command (blas), unless the user set
its thread count; an in-process CLI call (tests, notebooks) leaves the environment as it was."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from prefclean import blas

# Which OpenBLAS thread count the command's process had when its project UDF file was imported (before numpy).
PROBE_UDF = '''
import os
from pathlib import Path
Path(__file__).with_name("seen.txt").write_text(os.environ.get("OPENBLAS_NUM_THREADS", "unset"))
'''
THREADS_AFTER_NUMPY = ("from prefclean import blas; blas.one_thread_for_this_process(); import numpy, os; "
                       "print(len(os.listdir('/proc/self/task')))")


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in blas.THREAD_VARIABLES}
    return {**env, **extra}


def test_the_command_line_process_asks_for_one_thread_unless_the_user_chose(make_project):
    for extra, expected in (({}, "1"), ({"OMP_NUM_THREADS": "3"}, "unset"), ({"OPENBLAS_NUM_THREADS": "2"}, "2")):
        root = make_project(config={"name": "blas"}, models={"m": "select 1 as x"}, udfs={"probe": PROBE_UDF})
        done = subprocess.run([sys.executable, "-m", "prefclean.cli", "build", "--project-dir", str(root)],
                              capture_output=True, text=True, timeout=120, env=_clean_env(**extra))
        assert done.returncode == 0, done.stdout + done.stderr
        assert (root / "udfs" / "seen.txt").read_text() == expected, extra


def test_an_in_process_cli_build_leaves_the_environment_as_it_was(run_cli, make_project, monkeypatch):
    for name in blas.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    root = make_project(config={"name": "blas"}, models={"m": "select 1 as x"})
    assert run_cli("build", "--project-dir", root).exit_code == 0
    assert "OPENBLAS_NUM_THREADS" not in os.environ


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or (os.cpu_count() or 1) < 2,
                    reason="counts the process's threads in /proc; one core starts no pool thread anyway")
def test_numpy_then_starts_no_blas_thread_of_its_own():
    plain = subprocess.run([sys.executable, "-c", "import numpy, os; print(len(os.listdir('/proc/self/task')))"],
                           capture_output=True, text=True, timeout=60, env=_clean_env())
    limited = subprocess.run([sys.executable, "-c", THREADS_AFTER_NUMPY], capture_output=True, text=True,
                             timeout=60, env=_clean_env())
    if int(plain.stdout) == 1:
        pytest.skip("this numpy's BLAS starts no thread pool at import (not OpenBLAS)")
    assert int(limited.stdout) == 1, limited.stderr  # OpenBLAS starts one thread per core by default
