"""`vars:` and `--vars`: a var passed on the command line must be declared in prefclean.yml, so a typo
(`min_margn`) is an error with a suggestion instead of a run with the old value. Declaring `name: null` allows
a var with no value in the file.

A few vars are read by prefclean's own code, not only by a project's models; those are declared here, so
every project may pass them (a test checks that prefclean reads no other var).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from ..errors import ProjectError
from ..vars import check_var_types
from .base import PROJECT_FILE, did_you_mean

#: Vars prefclean itself reads (the Hub dataset card describes the run with them), with what they mean.
BUILTIN_VARS: dict[str, str] = {
    "source": "the source the pipeline reads (the dataset card names it)",
    "judges": "the judge panel, names under `judges:` (the dataset card lists their models)",
    "task": "the judge task (the dataset card names it; default ultrafeedback)",
    "aspect": "the rated aspect (the dataset card names it; default overall-rating)",
    "min_margin": "a decision threshold (the dataset card lists it)",
    "poor_max": "a decision threshold (the dataset card lists it)",
    "min_agreement": "a decision threshold (the dataset card lists it)",
    "allow_flip": "a decision setting (the dataset card lists it)",
    "drop_position_biased": "a decision setting (the dataset card lists it)",
    "check_position_bias": "a decision setting (the dataset card lists it)",
    "max_drop_rate": "the run summary warns when more than this share of the pairs is dropped (default 0.3)",
    "bias_check_margin": "a decision setting (the dataset card lists it)",
    "bias_check_direction": "a decision setting (the dataset card lists it)",
}
#: Vars prefclean sets for the models to read, and the option that sets them.
RESERVED_VARS: dict[str, str] = {"judge_override": "--judge NAME", "refresh_judgments": "--refresh-judgments"}


def parse_vars(text: str | None) -> dict[str, Any]:
    """Parse --vars: JSON or YAML mapping, as dbt accepts."""
    if not text:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at column {where.column + 1}" if where is not None and where.line == 0 else \
            (f" at line {where.line + 1}, column {where.column + 1}" if where is not None else "")
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProjectError(f"--vars is not valid YAML/JSON: {problem}{at} (write a mapping, e.g. "
                           "'{\"seed\": 7}' or 'seed: 7')") from None
    if not isinstance(value, dict):
        raise ProjectError(f"--vars must be a mapping like '{{\"seed\": 7}}', got {json.dumps(value)}")
    return value


def check_reserved(declared: dict[str, Any]) -> None:
    for name, option in RESERVED_VARS.items():
        if name in declared:
            raise ProjectError(f"{PROJECT_FILE}: `vars.{name}` is set by prefclean (from {option}); remove it")


def merge_vars(declared: dict[str, Any], cli_vars: dict[str, Any] | None, *, origin: str = "--vars") -> dict[str, Any]:
    """The file's vars overridden by --vars (or the API's `vars=`), each of which the file or prefclean declares."""
    for name in cli_vars or {}:
        name = str(name)
        if name in RESERVED_VARS:
            raise ProjectError(f"{origin}: `{name}` is set by prefclean; use {RESERVED_VARS[name]}")
        if name not in declared and name not in BUILTIN_VARS:
            hint = did_you_mean(name, [*declared, *BUILTIN_VARS])
            raise ProjectError(f"{origin}: `{name}` is not declared under `vars:` in {PROJECT_FILE}{hint} "
                               f"(to allow it, declare it there, e.g. `{name}: null`)")
    check_var_types(declared, cli_vars or {}, origin=origin)  # and each keeps the type its declared value has
    return {**declared, **(cli_vars or {})}
