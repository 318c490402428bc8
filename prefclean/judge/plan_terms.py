"""A plan's messages in the user's terms. The plan builds on a throwaway copy (judge/plan.py), so an error
naming a path in it (a model's compiled SQL, the copied warehouse) names a folder that is gone by the time it
is read: the model's own file and line are named instead, and the project's paths for the rest."""

from __future__ import annotations

import re
from pathlib import Path

_LINE = re.compile(r"LINE (\d+): ?(.*?)(?:\s{2,}\^|\s*$)")


def source_line(model, compiled_line: int, shown: str = "") -> int | None:
    """The line of the model's file that DuckDB's `LINE n` of its compiled SQL comes from, when that line is in
    the file as it was compiled (no Jinja on it) and only once; None otherwise."""
    lines = model.compiled_sql.splitlines()
    if not 1 <= compiled_line <= len(lines):
        return None
    text, shown = lines[compiled_line - 1].strip(), shown.strip(". ")
    if shown and shown not in text and text not in shown:  # DuckDB's line is not this one (it shows part of a
        return None  # long line; the first may start with the statement that wraps the model's SQL)
    found = [i for i, line in enumerate(model.template.splitlines(), 1) if line.strip() == text and text]
    return found[0] if len(found) == 1 else None


def model_error(message: str, model, compiled_shown: str) -> str:
    """A failed model's error with `(compiled SQL: <in the copy>)` replaced by its file and line."""
    marker = f"(compiled SQL: {compiled_shown})"
    if marker not in message:
        return message
    match = _LINE.search(message)
    where = str(model.path)
    if match:
        line = source_line(model, int(match.group(1)), match.group(2))
        where += f", line {line}" if line is not None else (
            f"; line {match.group(1)} of its compiled SQL, which `prefclean compile --select {model.name}` "
            "writes to target/compiled/")
    return message.replace(marker, f"({where})")


def user_paths(message: str, scratch: Path, project) -> str:
    """Any path in the plan's copy named as the project's own (warehouse, target folder)."""
    copy = scratch / project.warehouse.name
    for theirs, ours in ((copy, project.shown(project.warehouse)), (scratch / "target", project.shown(project.target_dir)),
                         (scratch, "the plan's copy of the warehouse")):
        message = message.replace(str(theirs), str(ours))
    return message
