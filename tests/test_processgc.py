"""The garbage collector is held and frozen only in a process that runs one prefclean command (processgc):
the console script's process does, an in-process CLI call (tests, notebooks) leaves Python's defaults."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from prefclean import processgc


@pytest.fixture
def restore_gc():
    frozen = gc.get_freeze_count()
    yield
    processgc._process = False
    processgc._held = False
    gc.enable()
    if gc.get_freeze_count() != frozen:
        gc.unfreeze()


def test_hold_does_nothing_outside_a_process_of_its_own(restore_gc):
    frozen = gc.get_freeze_count()
    processgc.hold()
    assert gc.isenabled()
    processgc.release()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_a_process_command_holds_collection_until_released_and_freezes_at_its_end(restore_gc):
    seen = {}

    def command():
        processgc.hold()
        seen["held"] = not gc.isenabled()
        processgc.release()
        seen["released"] = gc.isenabled()
        processgc.hold()  # a second hold (a failed build's path) ends with the command
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        processgc.run_as_process(command)
    assert seen == {"held": True, "released": True}
    assert gc.isenabled() and gc.get_freeze_count() > 0
    processgc.hold()  # the command is over: a caller that caught its exit and goes on keeps collecting
    assert gc.isenabled()


def test_an_in_process_cli_build_leaves_the_collector_as_it_was(run_cli, make_project, restore_gc):
    root = make_project(config={"name": "gc"}, models={"m": "select 1 as x"})
    frozen = gc.get_freeze_count()
    result = run_cli("build", "--project-dir", root)
    assert result.exit_code == 0, result.output
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_the_command_line_process_builds_and_exits_with_the_commands_code(make_project):
    ok = make_project(config={"name": "gc"}, models={"m": "select 1 as x"})
    bad = make_project(config={"name": "gc"}, models={"m": "select nope from nowhere"})
    for root, code in ((ok, 0), (bad, 1)):
        done = subprocess.run([sys.executable, "-m", "prefclean.cli", "build", "--project-dir", str(root)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == code, done.stdout + done.stderr
    assert "Done in" in done.stdout
