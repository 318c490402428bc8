"""Vars that nothing reads: a misspelled var in prefclean.yml (`bias_chek_margin: 0`) would otherwise change
nothing, without a word.

A var counts as read when its name appears quoted ('name' or "name") in the project's own text (models, macros,
tests, judge templates, udfs) or in prefclean's: deliberately lenient, so a var read in a branch not taken this
build, or by a Python export, is never called unread. What is left is named in one warning with a did-you-mean.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PROJECT_DIRS = ("models", "macros", "data_tests", "tests", "judge_templates", "udfs", "analyses", "seeds")
TEXT_SUFFIXES = {".sql", ".jinja", ".j2", ".py", ".yml", ".yaml", ".md"}
QUOTED = re.compile(r"""['"]([A-Za-z_][A-Za-z0-9_]*)['"]""")
SET_BY_PREFCLEAN = {"judge_override", "refresh_judgments"}  # added by --judge / --refresh-judgments


def _names_in(paths) -> set[str]:
    names: set[str] = set()
    for path in paths:
        try:
            names.update(QUOTED.findall(path.read_text(encoding="utf-8", errors="replace")))
        except OSError:
            continue
    return names


@lru_cache(maxsize=1)
def _package_names() -> frozenset[str]:
    return frozenset(_names_in(p for p in PACKAGE.rglob("*") if p.suffix in TEXT_SUFFIXES))


def _project_names(root: Path) -> set[str]:
    files = [p for d in PROJECT_DIRS if (root / d).is_dir() for p in (root / d).rglob("*")
             if p.is_file() and p.suffix in TEXT_SUFFIXES]
    return _names_in(files)


def unread_vars_warning(root: Path, declared: dict) -> str | None:
    """One warning naming every declared var nothing reads (with the closest read name), or None."""
    candidates = [name for name in declared if name not in SET_BY_PREFCLEAN]
    if not candidates:
        return None
    read = _project_names(root)
    unread = [name for name in candidates if name not in read]
    if unread:  # prefclean's own text only when the project's leaves some (~25 ms to read it all)
        read |= _package_names()
        unread = [name for name in unread if name not in read]
    if not unread:
        return None
    parts = []
    for name in unread:
        close = difflib.get_close_matches(name, sorted(read), n=1, cutoff=0.8)
        parts.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return (f"WARNING var {', '.join(parts)} in prefclean.yml `vars:` is read by no model, macro, test or "
            "template of this project: it changes nothing")
