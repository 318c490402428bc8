"""`executor:` in prefclean.yml: where judge batches run (`local`, or `ray` and its settings).

The settings apply whenever Ray is used, also when it is chosen on the command line (`--executor ray`), so they
are valid with any `type`. The defaults are the Ray executor's own (prefclean/judge/ray_executor.py OPTIONS;
a test keeps the two equal); the project passes on only what the file sets.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from .base import ConfigModel


class ExecutorConfig(ConfigModel):
    aliases: ClassVar[dict[str, str]] = {"ray_address": "address"}

    type: Literal["local", "ray"] | None = Field(None, description="local (default) or ray")
    address: str | None = Field(None, description="the Ray cluster (ray://head:10001); default $RAY_ADDRESS, "
                                                  "else a local Ray")
    num_actors: int = Field(2, ge=1, description="Ray actors per judge")
    batch_size: int = Field(16, ge=1, description="requests per batch sent to an actor")
    batches_per_actor: int | None = Field(None, ge=1, description="in-flight batches per actor "
                                                                  "(default: enough for twice its slots)")
    actor_options: dict[str, Any] = Field({"num_cpus": 1}, description="Ray actor options: num_gpus, resources...")
    split_concurrency: bool = Field(True, description="share the judge's concurrency and rate limit among the actors")
    num_cpus: float | None = Field(None, gt=0, description="CPUs for a local Ray that prefclean starts")
    runtime_env: dict[str, Any] | None = Field(None, description="Ray runtime_env, so actors elsewhere can "
                                                                 "import prefclean")
    start_timeout: float = Field(120, gt=0, description="seconds to wait for the actors to start")
    log_to_driver: bool = Field(False, description="show the actors' logs")

    def settings(self) -> dict[str, Any]:
        """What the file sets, as the Ray executor reads it."""
        return self.model_dump(exclude_unset=True)


def executor_from_text(value: Any) -> Any:
    """`executor: ray` is short for `executor: {type: ray}`; nothing is local."""
    if value is None:
        return {}
    return {"type": value} if isinstance(value, str) else value
