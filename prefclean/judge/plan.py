"""`prefclean plan`: what a build would ask each judge, found without asking it.

The rows a build judges are whatever the models' SQL hands the judge UDF (an incremental model's filter, a
panel, the bias check's second pass), so the plan runs that SQL: the selected models are built on a
throwaway copy of the warehouse, with the judge UDF replaced by a `Planner` that renders each row's
prompt, computes its cache key as the judge would, looks it up in the judgment cache (opened read-only),
counts its tokens and returns a NULL judgment. The copy is deleted afterwards; the warehouse, the cache and
the exports are never written, and no request is sent.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import duckdb

from ..errors import JudgeError, PrefcleanError
from ..project import JudgeConfig, Project
from ..results import JudgePlan, Plan
from .engines import create_engine
from .engines.base import GenerationParams
from .jsonrows import array_from_json_lines, json_line
from .judges import is_smoke_test, resolve_judge
from .record import RESULT_TYPE, Judgment
from .tokens import token_counter
from .udf import judge_style, judge_task, request_key, session_identity

PLANNED = "not judged: plan"


class _Tally:
    """One judge's counts during the plan."""

    def __init__(self, config: JudgeConfig, serial: bool, root: Path, batch: bool = False):
        self.config, self.serial, self.batch = config, serial, batch
        self.rows = self.cached = self.deduplicated = self.unjudgeable = self.prompt_tokens = 0
        self.keys: set[str] = set()  # distinct requests to send
        self.seen: set[str] = set()  # every key met (cached or not)
        self.counter = token_counter(config, root)


class Planner:
    """Stands in for the judge UDF in a plan's build (RunOptions.planner). Thread-safe."""

    def __init__(self, cache_path: Path):
        self.cache_path = cache_path
        self._con = None
        if cache_path.is_file():
            try:
                self._con = duckdb.connect(str(cache_path), read_only=True)
            except duckdb.Error as exc:
                raise PrefcleanError(f"the judgment cache {cache_path} cannot be read for the plan: "
                                     f"{' '.join(str(exc).split())}") from None
        self.lock = threading.Lock()
        self.tallies: dict[str, _Tally] = {}
        self.identities: dict[tuple[str, str], str] = {}

    def _cached(self, keys: list[str]) -> set[str]:
        if self._con is None or not keys:
            return set()
        with self.lock:
            rows = self._con.execute("select key from judgments where key in (select unnest(?::varchar[]))",
                                     [keys]).fetchall()
        return {r[0] for r in rows}

    def _seen_in_cache(self, judge: str) -> tuple[float | None, float | None]:
        """The mean completion tokens of this judge's cached judgments and the mean latency of its answered calls."""
        if self._con is None:
            return None, None
        with self.lock:
            completion = self._con.execute("select avg(completion_tokens) from judgments where judge = ?",
                                           [judge]).fetchone()[0]
            latency = self._con.execute("select avg(latency_ms) from calls where judge = ? and status = 'ok'",
                                        [judge]).fetchone()[0]
        return completion, latency

    def judge_batch(self, ctx, task_name: str, judge_name: str, aspect: str, instructions: list,
                    generations: list, references: list):
        config = resolve_judge(ctx.project, judge_name, ctx.options.judge_override)
        task = judge_task(ctx, task_name, compact=is_smoke_test(config))  # the prompts a build would send
        task.check(aspect)
        with self.lock:
            if (config.name, task_name) not in self.identities:
                engine = create_engine(config)  # engines start nothing when made (no load, no connection)
                params = GenerationParams(max_tokens=config.max_tokens, temperature=config.temperature,
                                          seed=config.seed, top_p=config.top_p)  # as the Dispatcher's
                style = judge_style(config)  # the prompt and key follow rationale/structured output, as in a build
                self.identities[(config.name, task_name)] = (session_identity(engine, task_name, params, style, task),
                                                             {} if style.default else {"style": style})
                self.tallies.setdefault(config.name, _Tally(config, engine.serial, ctx.project.root,
                                                            getattr(engine, "batch", False)))
            identity, styled = self.identities[(config.name, task_name)]
            tally = self.tallies[config.name]
        prompts: dict[str, list[dict]] = {}
        keys: list[str] = []
        for i, instruction in enumerate(instructions):
            gens = generations[i]
            if instruction is None or not gens or any(g is None for g in gens):
                tally.unjudgeable += 1
                continue
            try:
                prompt = task.prompt(instruction, gens, aspect, references[i], **styled)
            except JudgeError:
                tally.unjudgeable += 1
                continue
            key = request_key(identity, prompt.messages)
            keys.append(key)
            prompts.setdefault(key, prompt.messages)
        cached = self._cached(list(prompts))
        with self.lock:
            tally.rows += len(instructions)
            for key in keys:
                if key in cached:
                    tally.cached += 1
                elif key in tally.seen:
                    tally.deduplicated += 1
                tally.seen.add(key)
            new = [k for k in prompts if k not in cached and k not in tally.keys]
            tally.keys.update(new)
        tokens = sum(tally.counter.count(prompts[k]) for k in new)
        with self.lock:
            tally.prompt_tokens += tokens
        return array_from_json_lines([json_line(Judgment(judge=config.name, task=task_name, aspect=aspect,
                                                         error=PLANNED).result_row())] * len(instructions),
                                     RESULT_TYPE)

    def result(self, models: list, errors: list[str]) -> Plan:
        judges = []
        for name, t in self.tallies.items():
            completion_mean, latency_ms = self._seen_in_cache(name)
            judges.append(judge_plan(t, completion_mean, latency_ms))
        return Plan(tuple(judges), tuple(models), tuple(errors))

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


def judge_plan(t: _Tally, completion_mean: float | None, latency_ms: float | None) -> JudgePlan:
    """A judge's line of the plan: counts, the expected and largest completion, cost and time."""
    c = t.config
    requests = len(t.keys)
    most = requests * c.max_tokens
    expected = round(requests * completion_mean) if completion_mean is not None else most
    cost = cost_max = None
    if c.price is not None:  # a batch engine's at the price less batch_discount, as the build accounts it
        cost = c.price.cost(t.prompt_tokens, expected, batch=t.batch)
        cost_max = c.price.cost(t.prompt_tokens, most, batch=t.batch)
    slots = 1 if t.serial else c.most_in_flight() * max(1, len(c.base_urls))  # auto: at best its ceiling
    limits = {}
    if t.batch:  # the provider answers within its completion window, however it paces them
        window = completion_window_seconds(getattr(c, "completion_window", ""))
        if window is not None and requests:
            limits["completion_window"] = window
    elif latency_ms is not None:
        limits["latency"] = requests * latency_ms / 1000 / slots
    if c.requests_per_minute and not t.batch:
        limits["requests_per_minute"] = requests * 60 / c.requests_per_minute
    if c.tokens_per_minute and not t.batch:  # paced on prompt + max_tokens, as the dispatcher does
        limits["tokens_per_minute"] = (t.prompt_tokens + most) * 60 / c.tokens_per_minute
    bound = max(limits, key=limits.get) if limits else None
    over = []
    b = c.budget
    # A batch judge holds every line's reservation (its prompt + max_tokens) at once, before any answer settles
    # one, so its budget is checked against the most the lines can use; other judges' against the expected use.
    held_tokens, held_cost = (most, cost_max) if t.batch else (expected, cost)
    if b is not None:
        if b.max_requests is not None and requests > b.max_requests:
            over.append(f"max_requests {b.max_requests}")
        if b.max_tokens is not None and t.prompt_tokens + held_tokens > b.max_tokens:
            over.append(f"max_tokens {b.max_tokens}")
        if b.max_cost_usd is not None and held_cost is not None and held_cost > b.max_cost_usd:
            over.append(f"max_cost_usd {b.max_cost_usd:g}")
    return JudgePlan(
        name=c.name, engine=c.engine, model=c.model, rows=t.rows, cached=t.cached, deduplicated=t.deduplicated,
        unjudgeable=t.unjudgeable, requests=requests, prompt_tokens=t.prompt_tokens, completion_tokens=expected,
        completion_tokens_max=most, completion_tokens_seen=completion_mean is not None,
        cost_usd=None if cost is None else round(cost, 6), cost_usd_max=None if cost_max is None else round(cost_max, 6),
        seconds=None if bound is None else round(limits[bound], 1), seconds_bound_by=bound,
        latency_ms_seen=None if latency_ms is None else round(latency_ms, 1), token_count=t.counter.kind,
        token_count_why=getattr(t.counter, "why", None),
        budget=b.as_dict() if b is not None else {}, over_budget=tuple(over))


def completion_window_seconds(window: str) -> float | None:
    """A batch's completion window ("24h", "90m") in seconds, None when it is not written that way."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(window[:-1]) * units[window[-1]]
    except (KeyError, ValueError, IndexError):
        return None


def run_plan(project: Project, select: tuple[str, ...], exclude: tuple[str, ...], judge: str | None = None,
             full_refresh: bool = False, state: str | Path | None = None) -> Plan:
    """Build the selected models on a copy of the warehouse with the Planner as the judge (see the module)."""
    from ..runner import Build, BuildOptions

    planner = Planner(project.judgment_cache)
    scratch = Path(tempfile.mkdtemp(prefix="prefclean-plan-"))
    try:
        copy = scratch / project.warehouse.name
        for suffix in ("", ".wal"):  # a WAL left by a killed build holds committed work too
            src = project.warehouse.with_name(project.warehouse.name + suffix)
            if src.is_file():
                shutil.copyfile(src, copy.with_name(copy.name + suffix))
        # No exports: the plan writes no file of theirs (nor removes a leftover one).
        planned = replace(project, warehouse=copy, target_dir=scratch / "target", exports={})
        options = BuildOptions(select=select, exclude=exclude, full_refresh=full_refresh, run_tests=False,
                               run_exports=False, judge=judge, planner=planner, state=state)
        build = Build(planned, options)
        try:
            build.run()
        finally:
            build.close()
        errors = [f"{m.name}: {m.error}" for m in build.results if m.status == "error"]
        return planner.result([m.name for m in build.results if m.status == "success"], errors)
    finally:
        planner.close()
        shutil.rmtree(scratch, ignore_errors=True)
