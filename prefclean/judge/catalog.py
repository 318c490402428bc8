"""`prefclean judges`: each named judge with its engine, model and whether it answers."""

from __future__ import annotations

from ..errors import PrefcleanError
from ..project import Project
from ..redact import add_secrets_in_use, redact
from .dispatch import LoopThread
from .engines import EngineError, create_engine
from .judges import SMOKE_TEST_JUDGE, resolve_judge


def describe_judges(project: Project, *, check: bool = True) -> list[dict]:
    configs = list(project.judges.values()) or [resolve_judge(project, None)]
    add_secrets_in_use(configs)
    loop = LoopThread.get()
    rows = []
    for config in configs:
        row = {"name": config.name, "engine": config.engine, "model": redact(config.model) or "(default)", "ok": True,
               "status": "not checked"}
        engine = None
        try:
            engine = create_engine(config)
            row["model"] = engine.model or row["model"]
            if check:  # a one-token completion: a server that refuses every request is not "ok"
                row["status"] = "ok: " + loop.run(engine.check())
        except (EngineError, PrefcleanError) as exc:
            row.update(ok=False, status=f"UNAVAILABLE: {redact(str(exc))}")
        finally:
            if engine is not None:  # a failed check too: else aiohttp warns of an unclosed session at exit
                loop.run(engine.aclose())
        if config.name == SMOKE_TEST_JUDGE:
            row["status"] += " (smoke-test judge: ratings not meaningful)"
        rows.append(row)
    return rows
