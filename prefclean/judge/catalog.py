"""`prefclean judges`: each named judge with its engine, model and whether it answers."""

from __future__ import annotations

from ..errors import PrefcleanError
from ..project import Project
from .dispatch import LoopThread
from .engines import EngineError, create_engine
from .judges import SMOKE_TEST_JUDGE, resolve_judge


def describe_judges(project: Project, *, check: bool = True) -> list[dict]:
    configs = list(project.judges.values()) or [resolve_judge(project, None)]
    loop = LoopThread.get()
    rows = []
    for config in configs:
        row = {"name": config.name, "engine": config.engine, "model": config.model or "(default)", "ok": True,
               "status": "not checked"}
        try:
            engine = create_engine(config)
            row["model"] = engine.model or row["model"]
            if check:
                row["status"] = "ok: " + loop.run(engine.check())
            loop.run(engine.aclose())
        except (EngineError, PrefcleanError) as exc:
            row.update(ok=False, status=f"UNAVAILABLE: {exc}")
        if config.name == SMOKE_TEST_JUDGE:
            row["status"] += " (smoke-test judge: ratings not meaningful)"
        rows.append(row)
    return rows
