"""Judge on a Ray cluster: a pool of actors, each with its own engine and dispatcher.

    executor: {type: ray, address: "ray://head:10001", num_actors: 16}

Only the sending moves. Prompts, cache keys, the judgment cache and DuckDB stay on the driver: the UDF
looks keys up before calling judge() and stores the outcomes it yields, exactly as with the local
executor. Each actor runs the same Dispatcher as a local build (concurrency, retries, backoff, 429
pauses, re-asks), so an Outcome means the same thing wherever it was made. The driver splits requests
into small batches, sends each to the least-loaded actor, keeps a bounded number of batches in flight
and yields outcomes as batches finish.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import threading
from collections import deque
from pathlib import Path
from typing import Iterator

from ..errors import JudgeError
from ..project import JudgeConfig, Project
from .dispatch import Dispatcher, Outcome, Request, Stats
from .engines import create_engine
from .tasks import Verdict, make_task

OPTIONS = {
    "type": None,
    "address": None,  # Ray address; else the run option `ray_address`, else $RAY_ADDRESS, else a local Ray
    "num_actors": 2,  # actors per judge
    "batch_size": 16,  # requests per batch sent to an actor
    "batches_per_actor": None,  # in-flight batches per actor (backpressure); default: enough for 2x its slots
    "actor_options": {"num_cpus": 1},  # passed to the actor: num_gpus, resources, scheduling_strategy...
    "split_concurrency": True,  # divide the judge's concurrency and requests_per_minute among the actors
    "num_cpus": None,  # only when starting a local Ray
    "runtime_env": None,  # e.g. {pip: [prefclean], env_vars: {...}} so actors on other nodes can import prefclean
    "start_timeout": 120,  # seconds to wait for the actors to come up
    "log_to_driver": False,
}
INSTALL_HINT = "pip install 'prefclean[ray]'"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise JudgeError(f"executor ray: Ray is not installed; {INSTALL_HINT}") from None
    return ray


def _one_line(exc: BaseException) -> str:
    """The last meaningful line of a Ray error (they carry whole remote tracebacks)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and cause is not exc:
        return f"{type(cause).__name__}: {cause}".split("\n")[0]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "Error:" in line or "Exception:" in line]
    return (errors or lines or [type(exc).__name__])[-1][:400]


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes: ray.init keeps retrying an address nobody answers on."""
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local" and the like: Ray resolves them itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise JudgeError(f"executor ray: nothing answers at {address} ({exc.strerror or exc}): start the head node "
                         f"with `ray start --head` or fix `executor.address` / $RAY_ADDRESS") from None


def parse_options(project: Project, ray_address: str | None = None) -> dict:
    """The `executor:` mapping with defaults, checked; names the bad key the way prefclean.yml does."""
    raw = dict(project.executor or {})
    if "ray_address" in raw:
        raw.setdefault("address", raw.pop("ray_address"))
    unknown = sorted(set(raw) - set(OPTIONS))
    if unknown:
        raise JudgeError(f"prefclean.yml: unknown key `executor.{unknown[0]}` (expected one of {', '.join(OPTIONS)})")
    merged = {**OPTIONS, **{k: v for k, v in raw.items() if v is not None}}
    for key in ("num_actors", "batch_size", "batches_per_actor"):
        if key == "batches_per_actor" and merged[key] is None:
            continue
        if not isinstance(merged[key], int) or isinstance(merged[key], bool) or merged[key] < 1:
            raise JudgeError(f"prefclean.yml: `executor.{key}` must be a whole number >= 1, got {merged[key]!r}")
    for key in ("actor_options", "runtime_env"):
        if merged[key] is not None and not isinstance(merged[key], dict):
            raise JudgeError(f"prefclean.yml: `executor.{key}` must be a mapping")
    merged["address"] = merged["address"] or ray_address or os.environ.get("RAY_ADDRESS") or None
    return merged


class JudgeActor:
    """Lives in a Ray worker: one engine, one dispatcher, async so its batches share the dispatcher's slots."""

    def __init__(self, config: JudgeConfig, task_name: str, project_root: str | None):
        root = Path(project_root) if project_root and Path(project_root).is_dir() else None
        self.stats = Stats()
        self.reported = self.stats.as_dict()
        self.engine = create_engine(config)
        self.dispatcher = Dispatcher(config, self.engine, make_task(task_name, root), self.stats)

    async def ready(self) -> str:
        return self.engine.describe()

    async def judge(self, requests: list[Request]) -> tuple[list[Outcome], dict]:
        """Outcomes for a batch, and the counters (requests, retries, tokens...) added since the last report."""
        outcomes = await asyncio.gather(*(self.dispatcher.judge_one(r) for r in requests))
        now = self.stats.as_dict()
        delta = {k: now[k] - self.reported[k] for k in now}
        self.reported = now
        return list(outcomes), delta

    async def close(self) -> None:
        await self.engine.aclose()


class ActorPool:
    """The actors of one judge, with the number of batches each has in flight."""

    def __init__(self, actors: list, limit: int):
        self.actors = actors
        self.load = [0] * len(actors)
        self.limit = limit
        self.turn = 0
        self.cond = threading.Condition()

    def acquire(self, block: bool) -> int | None:
        """The least-loaded actor with room (ties in turn), or None when all are full and block is False."""
        with self.cond:
            while True:
                n = len(self.actors)
                order = sorted(range(n), key=lambda i: (self.load[i], (i - self.turn) % n))
                if self.load[order[0]] < self.limit:
                    chosen = order[0]
                    self.load[chosen] += 1
                    self.turn = (chosen + 1) % n
                    return chosen
                if not block:
                    return None
                self.cond.wait()

    def release(self, index: int) -> None:
        with self.cond:
            self.load[index] -= 1
            self.cond.notify_all()


class RayExecutor:
    """Created once per build by the judge UDF when the executor is `ray`; thread-safe."""

    def __init__(self, project: Project, ray_address: str | None = None):
        self.options = parse_options(project, ray_address)
        self.ray = _import_ray()
        self.project_root = str(project.root)
        self.pools: dict[tuple[str, str], ActorPool] = {}
        self.lock = threading.Lock()
        self.started_ray = False
        self.failure: str | None = None  # a start-up failure, repeated to later calls instead of retrying

    def describe(self) -> str:
        where = self.options["address"] or "a local runtime"
        return f"on Ray at {where}: {self.options['num_actors']} actors, batches of {self.options['batch_size']}"

    # -- start-up -----------------------------------------------------------------------------------
    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        opts = self.options
        kwargs = {"log_to_driver": bool(opts["log_to_driver"]), "logging_level": logging.WARNING}
        if opts["runtime_env"]:
            kwargs["runtime_env"] = opts["runtime_env"]
        if opts["address"]:
            kwargs["address"] = opts["address"]
        else:
            kwargs.update(include_dashboard=False, num_cpus=opts["num_cpus"])
        if opts["address"]:
            _check_reachable(opts["address"])
        try:
            ray.init(**kwargs)
        except Exception as exc:
            where = f"the Ray cluster at {opts['address']}" if opts["address"] else "a local Ray runtime"
            raise JudgeError(f"executor ray: cannot start or reach {where}: {_one_line(exc)}") from None
        self.started_ray = True

    def _pool(self, judge_name: str, config: JudgeConfig, task_name: str) -> ActorPool:
        with self.lock:
            if self.failure:
                raise JudgeError(self.failure)
            key = (judge_name, task_name)
            if key not in self.pools:
                try:
                    self._connect()
                    self.pools[key] = self._start_pool(config, task_name)
                except JudgeError as exc:
                    self.failure = str(exc)
                    raise
            return self.pools[key]

    def _actor_configs(self, config: JudgeConfig) -> list[JudgeConfig]:
        """Share the judge's concurrency and rate limit out, so the pool together sends what a local build would."""
        n = self.options["num_actors"]
        if not self.options["split_concurrency"] or n == 1:
            return [config] * n
        rpm = config.requests_per_minute / n if config.requests_per_minute else config.requests_per_minute
        auto = getattr(config, "concurrency", 1) == "auto"  # each actor finds its own; their ceilings add up to the judge's
        total = config.most_in_flight()
        shares = [total // n + (1 if i < total % n else 0) for i in range(n)]
        # more actors than slots: each still needs one
        key = "max_concurrency" if auto else "concurrency"
        return [config.model_copy(update={key: max(1, share), "requests_per_minute": rpm}) for share in shares]

    def _start_pool(self, config: JudgeConfig, task_name: str) -> ActorPool:
        ray, opts = self.ray, self.options
        remote = ray.remote(JudgeActor).options(max_restarts=1, max_task_retries=1, **opts["actor_options"])
        configs = self._actor_configs(config)
        actors = [remote.remote(c, task_name, self.project_root) for c in configs]
        try:
            ray.get([a.ready.remote() for a in actors], timeout=opts["start_timeout"])
        except ray.exceptions.GetTimeoutError:
            self._kill(actors)
            raise JudgeError(
                f"executor ray: {len(actors)} actors for judge '{config.name}' did not start within "
                f"{opts['start_timeout']}s (each asks {opts['actor_options']}; the cluster has "
                f"{ray.available_resources()} free): lower `executor.num_actors` or `executor.actor_options`") from None
        except ray.exceptions.RayError as exc:
            self._kill(actors)
            raise JudgeError(f"executor ray: the actors for judge '{config.name}' failed to start: {_one_line(exc)} "
                             f"(on a cluster, every node needs prefclean: set `executor.runtime_env`)") from None
        # Keep each actor's dispatcher busy: twice its request slots queued, in batches.
        slots = max(c.most_in_flight() for c in configs) * max(1, len(config.base_urls))
        limit = opts["batches_per_actor"] or max(2, math.ceil(2 * slots / opts["batch_size"]))
        return ActorPool(actors, limit)

    # -- judging ------------------------------------------------------------------------------------
    def judge(self, judge_name: str, judge_config: JudgeConfig, task_name: str, requests: list[Request],
              stats: Stats) -> Iterator[Outcome]:
        """Yield one Outcome per request, in completion order. A lost batch yields failed outcomes (not cached).
        The actors' counters (requests, retries, tokens) are added to `stats`, the judge's."""
        ray = self.ray
        pool = self._pool(judge_name, judge_config, task_name)
        size = self.options["batch_size"]
        waiting = deque(requests[i:i + size] for i in range(0, len(requests), size))
        pending: dict = {}  # ObjectRef -> (actor index, batch)
        try:
            while waiting or pending:
                while waiting:
                    index = pool.acquire(block=not pending)  # never block while our own batches can free a slot
                    if index is None:
                        break
                    batch = waiting.popleft()
                    pending[pool.actors[index].judge.remote(batch)] = (index, batch)
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index, batch = pending.pop(ref)
                    pool.release(index)
                    yield from self._collect(ref, batch, judge_config, stats)
        finally:
            for ref, (index, _) in pending.items():
                ray.cancel(ref)
                pool.release(index)

    def _collect(self, ref, batch: list[Request], config: JudgeConfig, stats: Stats) -> list[Outcome]:
        try:
            outcomes, counts = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            error = f"ray executor: batch lost: {_one_line(exc)}"
            return [Outcome(r.key, Verdict(None, None, None, error), None, config.model or "") for r in batch]
        stats.add(**counts)
        return outcomes

    # -- shutdown -----------------------------------------------------------------------------------
    def _kill(self, actors: list) -> None:
        for actor in actors:
            try:
                self.ray.kill(actor)
            except Exception:
                pass

    def close(self) -> None:
        """Close every engine (bounded wait), stop the actors, and stop Ray only if this executor started it."""
        ray = self.ray
        with self.lock:
            pools, self.pools = list(self.pools.values()), {}
            if ray.is_initialized():
                closing = [a.close.remote() for p in pools for a in p.actors]
                if closing:
                    try:
                        ray.wait(closing, num_returns=len(closing), timeout=10)
                    except Exception:
                        pass
                for pool in pools:
                    self._kill(pool.actors)
            if self.started_ray:
                ray.shutdown()
                self.started_ray = False
