"""Which judge a judge() call uses: named in prefclean.yml, overridden with --judge, or the offline default."""

from __future__ import annotations

import difflib

from ..errors import JudgeError
from ..project import JudgeConfig, Project

SMOKE_TEST_JUDGE = "smoke-test"
SMOKE_TEST_WARNING = ("smoke-test judge: a 135M-parameter model that runs offline to prove the pipeline works; "
                      "its ratings are NOT meaningful. Name a real judge in prefclean.yml (see README).")


def smoke_test_judge() -> JudgeConfig:
    """The judge used when a project names none: SmolLM2-135M (GGUF shipped on PyPI) in llama.cpp."""
    return JudgeConfig(name=SMOKE_TEST_JUDGE, engine="llamacpp", model=None, max_tokens=160, temperature=0.0,
                       seed=0, max_retries=0, parse_retries=0)


def is_smoke_test(config: JudgeConfig) -> bool:
    """The offline smoke-test judge (not a judge the project names so): it renders the tasks' compact prompts."""
    return config.name == SMOKE_TEST_JUDGE and config.engine == "llamacpp" and not config.model


def resolve_judge(project: Project, requested: str | None, override: str | None = None) -> JudgeConfig:
    name = override or requested
    if name and name != "default":
        if name in project.judges:
            return project.judges[name]
        if name == SMOKE_TEST_JUDGE:
            return smoke_test_judge()
        close = difflib.get_close_matches(name, list(project.judges), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (f" (known: {', '.join(project.judges)})" if project.judges else
                                                             " (prefclean.yml has no `judges:`)")
        raise JudgeError(f"no judge named '{name}' in prefclean.yml{hint}")
    if project.default_judge:
        return project.judges[project.default_judge]
    if "default" in project.judges:
        return project.judges["default"]
    if len(project.judges) == 1:
        return next(iter(project.judges.values()))
    if project.judges:
        raise JudgeError(f"several judges are named ({', '.join(project.judges)}): pick one with judge='name', "
                         "`default_judge:` in prefclean.yml or --judge")
    return smoke_test_judge()
