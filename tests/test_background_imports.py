"""A build starts importing pyarrow while the warehouse opens (runner.import_in_background): what it imports is
then in sys.modules for whoever imports it next, and an import that fails is left for that importer to raise."""

from __future__ import annotations

import sys
import threading

from prefclean.runner import ARROW_MODULES, import_in_background


def _join_imports() -> None:
    for thread in threading.enumerate():
        if thread.name == "prefclean-imports":
            thread.join(60)


def test_modules_are_imported_in_the_background_and_a_failure_is_silent(tmp_path, monkeypatch):
    (tmp_path / "bg_probe_module.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "bg_probe_module", raising=False)
    import_in_background(("no_such_module_anywhere", "bg_probe_module"))  # the first fails: the rest waits
    _join_imports()
    assert "bg_probe_module" not in sys.modules
    import_in_background(("bg_probe_module", "no_such_module_anywhere"))
    _join_imports()
    assert sys.modules["bg_probe_module"].VALUE == 7
    monkeypatch.delitem(sys.modules, "bg_probe_module")


def test_nothing_starts_when_everything_is_imported_already():
    import importlib

    for name in ARROW_MODULES:
        importlib.import_module(name)
    before = threading.active_count()
    import_in_background(ARROW_MODULES)
    assert threading.active_count() == before
