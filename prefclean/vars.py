"""Typed vars: a var's value in prefclean.yml declares its type, and a `--vars` override must keep it.

A value of the wrong type would reach SQL as text (`min_margin: "one"` becomes `>= one`, a Binder error far
from its cause); checked here, the error names the var, both types and where each came from.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ProjectError


def kind_of(value: Any) -> str | None:
    """The type a var's value declares, in words; None (a null) declares nothing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


#: Vars whose value is one of a few choices of more than one type: any choice may replace any other.
VAR_CHOICES: dict[str, tuple[Any, ...]] = {"check_position_bias": (True, False, "uncertain"),
                                           "bias_check_direction": ("auto", "both")}


def _is_choice(value: Any, choices: tuple[Any, ...]) -> bool:
    return any(value is c if isinstance(c, bool) else (not isinstance(value, bool) and value == c) for c in choices)


def check_var_types(declared: dict[str, Any], overrides: dict[str, Any], *, origin: str = "--vars",
                    declared_in: str = "prefclean.yml") -> None:
    """Raise ProjectError when an override's type differs from the declared value's (numbers are one type:
    1 and 1.5 both fit `min_agreement: 1.0`). Unknown keys are left to the caller."""
    for name, value in overrides.items():
        if name not in declared:
            continue
        choices = VAR_CHOICES.get(name)
        if choices and _is_choice(declared[name], choices):
            if _is_choice(value, choices):
                continue
            raise ProjectError(f"{origin}: var '{name}' is {json.dumps(value, default=str)}; it takes one of "
                               + ", ".join(json.dumps(c) for c in choices))
        want, got = kind_of(declared[name]), kind_of(value)
        if want is None or got is None or want == got:
            continue
        raise ProjectError(f"{origin}: var '{name}' is {json.dumps(value, default=str)} ({got}); {declared_in} "
                           f"declares it {want} ({name}: {json.dumps(declared[name], default=str)})")
