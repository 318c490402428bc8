"""What each cleaning threshold would keep, measured against the humans.

For every threshold pair_decision applies — `min_margin`, `poor_max`, `min_agreement` (the panel) and the
bias check (`drop_position_biased`) — each setting is tried with the others at the project's values: the
share of reviewed pairs the judge would keep (or flip) and the kept set's precision, the share whose human
verdict points the same way (a kept pair is right when the human says 'chosen', a flipped one when the human
says 'rejected'). The decision is pair_decision's, in the same order, on the audit model's panel ratings,
agreement and position flips as the build computed them.

The suggestion follows one stated rule (SUGGESTION_RULE), so a reader can check it by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

SUGGESTION_RULE = ("the setting that keeps the most pairs among those whose precision is within 0.05 of the "
                   "best one (ties: the higher precision, then the current setting)")
PRECISION_SLACK = 0.05
MIN_MARGINS = (0.5, 1, 1.5, 2, 2.5, 3)
POOR_MAXES = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class Settings:
    """The decision thresholds pair_decision is given (the project's vars of the same names)."""
    min_margin: float = 1
    poor_max: float = 2
    min_agreement: float = 1.0
    drop_position_biased: bool = True
    allow_flip: bool = False


def decision(row: dict, s: Settings) -> str:
    """'keep', 'flip' or 'drop', as pair_decision decides from the panel's ratings (missing agreement: a
    panel of one; a missing position flip: not checked)."""
    c, x = row["judge_chosen"], row["judge_rejected"]
    if row.get("failed") or c is None or x is None:
        return "drop"
    if (row.get("agreement") if row.get("agreement") is not None else 1.0) < s.min_agreement:
        return "drop"
    if s.drop_position_biased and row.get("position_flipped"):
        return "drop"
    if max(c, x) <= s.poor_max or abs(c - x) < s.min_margin:
        return "drop"
    if x > c:
        return "flip" if s.allow_flip else "drop"
    return "keep"


def outcome(rows: Sequence[dict], s: Settings) -> dict:
    """How many pairs these settings keep (kept or flipped), their share, and the kept set's precision."""
    kept = right = 0
    for r in rows:
        d = decision(r, s)
        if d != "drop":
            kept += 1
            right += r["human"] == ("chosen" if d == "keep" else "rejected")
    return {"kept": kept, "share_kept": round(kept / len(rows), 4) if rows else None,
            "precision": round(right / kept, 4) if kept else None}


def suggest(settings: list[dict], name: str, current) -> object:
    scored = [s for s in settings if s["precision"] is not None]
    if not scored:
        return None
    best = max(s["precision"] for s in scored)
    return max((s for s in scored if s["precision"] >= best - PRECISION_SLACK),
               key=lambda s: (s["kept"], s["precision"], s[name] == current))[name]


def sweep(rows: Sequence[dict], name: str, values: Sequence, settings: Settings) -> dict:
    """Per value of threshold `name` (the others as in `settings`): kept, share kept, precision; and the
    suggested value."""
    current = getattr(settings, name)
    values = sorted(set(values) | {current}) if not isinstance(current, bool) else list(values)
    tried = [{name: v, **outcome(rows, replace(settings, **{name: v}))} for v in values]
    return {"current": current, "settings": tried, "suggested": suggest(tried, name, current)}


def sweeps(rows: Sequence[dict], settings: Settings) -> dict:
    """Every threshold's sweep. min_agreement tries the agreement levels the panel actually has (a setting
    between two of them keeps what the higher one keeps), each rounded down to 4 digits; one level (a single judge) is said in `note`."""
    # rounded down, so that the setting written as shown keeps its level (2/3 -> 0.6666, not 0.6667)
    levels = sorted({math.floor(r["agreement"] * 10_000 + 1e-9) / 10_000 for r in rows
                     if r.get("agreement") is not None}) or [1.0]
    out = {"min_margin": sweep(rows, "min_margin", MIN_MARGINS, settings),
           "poor_max": sweep(rows, "poor_max", POOR_MAXES, settings),
           "min_agreement": sweep(rows, "min_agreement", levels, settings),
           "drop_position_biased": sweep(rows, "drop_position_biased", [True, False], settings)}
    if len(levels) == 1:
        out["min_agreement"]["note"] = "every reviewed pair's panel agreed alike: nothing to choose between"
    checked = sum(bool(r.get("bias_checked")) for r in rows)
    flipped = sum(bool(r.get("position_flipped")) for r in rows)
    out["drop_position_biased"].update(checked=checked, flipped=flipped)
    if not flipped:
        out["drop_position_biased"]["note"] = ("no reviewed pair was judged swapped" if not checked else
                                               "no reviewed pair's verdict changed when swapped")
    return out
