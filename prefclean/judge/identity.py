"""A judgment's identity: everything that can change a judge's answer, as a short string a model stores.

    {% set judged_with = judge_identity(var('judges'), var('aspect')) %}
    ... '{{ judged_with }}' as judged_with ...
    {% if is_incremental() %} where pair_id not in (select pair_id from {{ this }} where judged_with = '{{ judged_with }}') {% endif %}

A name says little: the judge behind `fake` may get another model, temperature or engine, `default` may point
at another judge, and `judge_templates/` may change the prompt. The identity is made of the resolved judge
(after --judge and `default_judge`): its engine, model, generation parameters and the options that reach the
model, the task and aspect, and a hash of the prompt templates as the project resolves them (its own
`judge_templates/` first, with what they include). It is computed when the model renders, without starting
an engine (no token, no model load), so `prefclean compile` shows it and a rebuild that judges nothing costs
nothing. Rows whose stored identity differs are judged again; the judgment cache, keyed on the engine, model,
parameters and exact prompt, still answers every request whose answer cannot have changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import JudgeError
from ..redact import without_userinfo
from .judges import is_smoke_test, resolve_judge
from .tasks import make_task
from .template_tree import template_sources

# Options that change how fast an engine answers, not what: left out so that tuning them re-judges nothing.
SPEED_OPTIONS = frozenset({"n_threads", "n_threads_batch", "n_gpu_layers", "n_ctx"})


def judge_fingerprint(project, config, task: str) -> dict:
    """What in one resolved judge and task can change an answer."""
    fields = {
        "engine": config.engine, "model": config.model, "max_tokens": config.max_tokens,
        "temperature": config.temperature, "seed": config.seed, "top_p": config.top_p,
        "options": {k: v for k, v in sorted(config.options.items()) if k not in SPEED_OPTIONS},
        "task": task, "templates": template_hash(project.root, task, is_smoke_test(config)),
    }
    if getattr(config, "rationale", "full") != "full":  # the prompt, schema and grammar follow it
        fields["rationale"] = config.rationale
    step = getattr(config, "escalate", None)
    if step is not None and step.to in project.judges and not project.vars.get("judge_override"):
        # the unsure pairs' judgments are the stronger judge's: a change in it, or in the margin, re-judges
        fields["escalate"] = {"margin": step.margin,
                              "to": judge_fingerprint(project, project.judges[step.to], task)}
    if not config.model:  # a model named by its server (an Inference Endpoint, a TGI URL) or a default
        fields["base_urls"] = [without_userinfo(url) for url in config.base_urls]
    if config.engine == "llamacpp":  # the same path with another file in it (or another smoke-test model)
        fields["gguf_size"] = _gguf_size(config.model)
    if is_smoke_test(config):  # the shipped model as it is run (re-encoded: engines/llamacpp.py)
        from .engines.llamacpp import SMOKE_ENCODING

        fields["encoding"] = SMOKE_ENCODING
    return fields


def _gguf_size(model: str | None) -> int | None:
    """The size of a local GGUF (the default one when no model is named), or None when it is not a local file."""
    if model:
        path = Path(model).expanduser()
        return path.stat().st_size if path.is_file() else None
    from .engines.llamacpp import default_gguf  # finds the file; imports neither llama_cpp nor the package

    try:
        return default_gguf().stat().st_size
    except (JudgeError, OSError):
        return None


def template_hash(root: Path | None, task: str, compact: bool = False) -> str:
    """A hash of the source of every template the task renders, as this project resolves them (and of the
    compact task's grammar bound, for the smoke-test judge)."""
    built = make_task(task, root, compact)
    digest = hashlib.sha256()
    if built.substitutes:
        digest.update(f"compact\0{built.compact_words}\0".encode())
    for name, source, _ in template_sources(built.env, built.rendered_templates):  # (a syntax error is hashed
        digest.update(f"{name}\0{source}\0".encode())  # as it is: the judge reports it when it renders)
    return digest.hexdigest()[:16]


def panel_identity(project, judges, aspect: str, task: str = "ultrafeedback") -> str:
    """`names|aspect|hash` for a panel: readable, and different whenever any judge's answer may be."""
    names = [judges] if isinstance(judges, str) else list(judges)
    override = project.vars.get("judge_override")
    resolved, parts = [], []
    for name in names:
        try:
            config = resolve_judge(project, name, override)
            fingerprint = judge_fingerprint(project, config, task)
            resolved.append(config.name)
        except JudgeError as exc:  # the judge says so when it runs, and fails its model then
            fingerprint = {"unresolved": name, "why": str(exc)}
            resolved.append(name)
        parts.append(fingerprint)
    digest = hashlib.sha256(json.dumps([parts, aspect], sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{','.join(resolved)}|{aspect}|{digest}"


def judge_identity(project, judges, aspect: str = "overall-rating", task: str = "ultrafeedback") -> str:
    """The identity of the judgments a panel makes (see the module docstring); the project is bound by the
    compiler."""
    return panel_identity(project, judges, aspect, task)


judge_identity.with_project = True  # type: ignore[attr-defined]
