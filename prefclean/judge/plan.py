"""`prefclean plan`: what a build would ask each judge, found without asking it.

The rows a build judges are whatever the models' SQL hands the judge UDF (an incremental model's filter, a
panel, the bias check's second pass), so the plan runs that SQL: the selected models are built on a
throwaway copy of the warehouse, with the judge UDF replaced by a `Planner` that renders each row's
prompt, computes its cache key as the judge would, looks it up in the judgment cache (opened read-only),
counts its tokens and returns, for a row the cache answers, its cached judgment (so SQL that decides on a
verdict, such as `check_position_bias: uncertain`, decides on the real one), and for any other row a
stand-in. The copy is deleted afterwards; the warehouse, the cache and the exports are never written, and no
request is sent.

A verdict that is not in the cache cannot be known before it is asked for, so when a first run met any, the
plan runs again with other stand-ins: `unknown="tie"` (every unknown verdict a tie, the most uncertain one:
whatever is escalated for close verdicts is asked; the union with the first run is the upper bound; with an
escalation, `unknown="clear"` too: a decisive verdict no margin escalates, for what a judge keeping its pair asks
next, its swapped pass), and,
when that asks more and the cache holds verdicts of the judge, `unknown="sample"` (each unknown
verdict drawn from the judge's cached ones: the estimate). `requests_count` says whether the count is exact.
The uncertain bias check re-checks only close pairs the first pass keeps, leaning on the judge's position tilt
(prefclean/macros/cleaning.sql), so an unknown verdict carries UNKNOWN: as a tie's raw answer it is re-checked
and leaves its judge's tilt unsettled (both directions: the most), as the first run's error it leaves the tilt
unsettled the other way (neither direction: the requests sent whatever the verdicts).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb

from ..errors import JudgeError, PrefcleanError
from ..project import JudgeConfig, Project
from ..summary import max_drop_rate
from ..results import JudgePlan, Plan
from .engines import create_engine
from .engines.base import GenerationParams
from .escalation import escalation_targets
from .fits import within_budgets
from .plan_terms import model_error, user_paths
from .jsonrows import array_from_json_lines, json_line
from .judges import SMOKE_TEST_WARNING, is_smoke_test, resolve_judge
from .record import CACHE_NAMES, RESULT_TYPE, Judgment, from_cache
from .tokens import token_counter
from .keys import input_key, inputs_identity, request_key
from .udf import judge_style, judge_task, session_identity

PLANNED = "not judged: plan"
UNKNOWN = "not judged: plan, verdict unknown"  # a verdict not in the cache (cleaning.sql plan_unknown)
TIE = 3  # the stand-in rating of every response in an unknown verdict taken as a tie
CLEAR = (5, 1)  # the stand-in ratings of an unknown verdict taken as clear (unknown="clear")
SAMPLES = 2000  # cached verdicts per judge, task, aspect and size drawn from for the estimate


@dataclass
class Shared:
    """What the plan's runs share: each judge's token counter (a GGUF vocabulary loads once) and each prompt's
    count (a prompt met again is not tokenized again)."""

    counters: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)  # key -> prompt tokens


class _Tally:
    """One judge's counts during one run of the plan."""

    def __init__(self, config: JudgeConfig, serial: bool, counter, batch: bool = False):
        self.config, self.serial, self.batch, self.counter = config, serial, batch, counter
        self.rows = self.cached = self.deduplicated = self.unjudgeable = self.in_open_batches = 0
        self.keys: dict[str, int] = {}  # distinct requests to send -> their prompt tokens
        self.seen: set[str] = set()  # every key met (cached or not)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.keys.values())


class Planner:
    """Stands in for the judge UDF in a plan's build (RunOptions.planner). Thread-safe.

    `unknown`: what a row the cache cannot answer gets: "none" (an error, not judged: plan), "tie" or "sample"
    (see the module)."""

    def __init__(self, cache_path: Path, unknown: str = "none", shared: Shared | None = None):
        self.cache_path, self.unknown = cache_path, unknown
        self.shared = shared or Shared()
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
        self.unknown_verdicts = 0  # rows given a stand-in
        self.escalated_from: dict[str, str] = {}  # stronger judge -> the judge escalating to it (escalate:)
        self.unsampled_of: dict[str, int] = {}  # unknown="sample": rows with no cached verdict to draw from (ties)
        self._samples: dict[tuple, list] = {}

    def _cached(self, keys: list[str], prompt_keys: dict[str, str]) -> dict[str, dict]:
        """key -> the cached judgment a build would answer it with: by its key, or by its prompt's (keys.py)."""
        if self._con is None or not keys:
            return {}
        wanted = set(keys)
        by_prompt = {prompt_keys[k]: k for k in keys if prompt_keys.get(k, k) != k}
        with self.lock:
            names = self._cache_names()
            select = f"select {', '.join(names)} from judgments where"
            rows = self._con.execute(f"{select} key in (select unnest(?::varchar[]))",
                                     [keys + list(by_prompt)]).fetchall()
            if by_prompt and "prompt_key" in names:
                rows += self._con.execute(f"{select} prompt_key in (select unnest(?::varchar[]))",
                                          [list(by_prompt)]).fetchall()
        found: dict[str, dict] = {}
        for r in rows:
            row = dict(zip(names, r))
            for k in (row["key"], row.get("prompt_key")):
                target = k if k in wanted else by_prompt.get(k)
                if target is not None and target not in found:
                    found[target] = row
        return found

    def _cache_names(self) -> list[str]:
        """The cached columns this cache has: one from before input keys (the plan opens it read-only, so it is
        not migrated) has no prompt_key."""
        have = {r[0] for r in self._con.execute("select column_name from duckdb_columns() where table_name = "
                                                "'judgments'").fetchall()}
        return [name for name in CACHE_NAMES if name in have]

    def _in_open_batches(self, keys: list[str]) -> set[str]:
        """Those of `keys` in a provider batch an earlier build submitted and no build has collected yet."""
        if self._con is None or not keys:
            return set()
        with self.lock:
            try:
                rows = self._con.execute(
                    "select r.custom_id from batch_requests r join batches b using (batch_id) where b.collected_at "
                    "is null and b.status <> 'exported' and r.custom_id in (select unnest(?::varchar[]))",
                    [keys]).fetchall()
            except duckdb.CatalogException:  # a cache from before provider batches: none
                return set()
        return {r[0] for r in rows}

    def _seen_in_cache(self, judge: str) -> tuple[float | None, float | None]:
        """The mean completion tokens of this judge's cached judgments for the tasks planned and answered as it
        is asked now (ratings only or with rationales: `rationale: none` after full ones answers in a tenth of the
        tokens), and the mean latency of its answered calls."""
        if self._con is None:
            return None, None
        tasks = [task for name, task in self.identities if name == judge]
        tally = self.tallies.get(judge)
        ratings_only = tally is not None and judge_style(tally.config).rationale == "none"
        with self.lock:
            completion = self._con.execute(
                "select avg(completion_tokens) from judgments where judge = ? and task in (select unnest(?::varchar[])) "
                "and coalesce(list_bool_and(list_transform(rationales, lambda r: r is null)), true) = ?",
                [judge, tasks, ratings_only]).fetchone()[0]
            latency = self._con.execute("select avg(latency_ms) from calls where judge = ? and status = 'ok'",
                                        [judge]).fetchone()[0]
        return completion, latency

    def verdicts_of(self, judge: str) -> int:
        """How many verdicts of this judge the cache holds (what an estimate is drawn from)."""
        if self._con is None:
            return 0
        with self.lock:
            return self._con.execute("select count(*) from judgments where judge = ?", [judge]).fetchone()[0]

    def _sample(self, judge: str, task: str, aspect: str, n: int, key: str) -> Judgment | None:
        """A cached verdict of this judge (same task, aspect and number of responses), picked by the key."""
        at = (judge, task, aspect, n)
        with self.lock:
            if at not in self._samples:
                self._samples[at] = [] if self._con is None else self._con.execute(
                    "select ratings, winner from judgments where judge = ? and task = ? and aspect = ? "
                    "and len(ratings) = ? order by key limit ?", [judge, task, aspect, n, SAMPLES]).fetchall()
            pool = self._samples[at]
        if not pool:
            return None
        ratings, winner = pool[int(key[:12], 16) % len(pool)]
        return Judgment(ratings=list(ratings), winner=winner, judge=judge, task=task, aspect=aspect, key=key)

    def _stand_in(self, judge: str, task: str, aspect: str, n: int, key: str) -> Judgment:
        if self.unknown == "sample":
            drawn = self._sample(judge, task, aspect, n, key)
            if drawn is not None:
                return drawn
            with self.lock:
                self.unsampled_of[judge] = self.unsampled_of.get(judge, 0) + 1
        if self.unknown == "clear":  # decisive: escalated by no margin under 4, yet re-checked (raw UNKNOWN)
            return Judgment(ratings=[CLEAR[0]] + [CLEAR[1]] * (n - 1), raw=UNKNOWN, judge=judge, task=task,
                            aspect=aspect, key=key)
        if self.unknown in ("tie", "sample"):
            return Judgment(ratings=[TIE] * n, raw=UNKNOWN, judge=judge, task=task, aspect=aspect, key=key)
        return Judgment(judge=judge, task=task, aspect=aspect, error=UNKNOWN)

    def judge_batch(self, ctx, task_name: str, judge_name: str, aspect: str, instructions: list,
                    generations: list, references: list):
        config = resolve_judge(ctx.project, judge_name, ctx.options.judge_override)
        task = judge_task(ctx, task_name, compact=is_smoke_test(config))  # the prompts a build would send
        task.check(aspect)
        with self.lock:
            if not ctx.options.judge_override:
                self.escalated_from.update(escalation_targets(ctx.project))
            if (config.name, task_name) not in self.identities:
                engine = create_engine(config)  # engines start nothing when made (no load, no connection)
                params = GenerationParams(max_tokens=config.max_tokens, temperature=config.temperature,
                                          seed=config.seed, top_p=config.top_p)  # as the Dispatcher's
                style = judge_style(config)  # the prompt and key follow rationale/structured output, as in a build
                identity = session_identity(engine, task_name, params, style, task)
                self.identities[(config.name, task_name)] = (identity, inputs_identity(identity, task),
                                                             {} if style.default else {"style": style})
                if config.name not in self.shared.counters:
                    self.shared.counters[config.name] = token_counter(config, ctx.project.root)
                self.tallies.setdefault(config.name, _Tally(config, engine.serial, self.shared.counters[config.name],
                                                            getattr(engine, "batch", False)))
            identity, inputs, styled = self.identities[(config.name, task_name)]
            tally = self.tallies[config.name]
        prompts: dict[str, list[dict]] = {}
        prompt_keys: dict[str, str] = {}
        keys: list[str | None] = []  # per row; None: cannot be judged
        sizes: dict[str, int] = {}
        for i, instruction in enumerate(instructions):
            gens = generations[i]
            if instruction is None or not gens or any(g is None for g in gens):
                tally.unjudgeable += 1
                keys.append(None)
                continue
            try:
                prompt = task.prompt(instruction, gens, aspect, references[i], **styled)
            except JudgeError:
                tally.unjudgeable += 1
                keys.append(None)
                continue
            prompt_key = request_key(identity, prompt.messages)  # keyed as a build keys it (keys.py)
            key = input_key(inputs, instruction, gens, aspect, references[i]) if inputs else prompt_key
            keys.append(key)
            prompts.setdefault(key, prompt.messages)
            prompt_keys.setdefault(key, prompt_key)
            sizes[key] = prompt.n
        # --refresh-judgments: the build asks again what the cache holds (and stores the answers)
        cached = {} if ctx.options.refresh_judgments else self._cached(list(prompts), prompt_keys)
        waiting = self._in_open_batches([k for k in prompts if k not in cached]) if tally.batch else set()
        with self.lock:
            tally.rows += len(instructions)
            for key in keys:
                if key is None:
                    continue
                if key in cached:
                    tally.cached += 1
                elif key in waiting:  # submitted by an earlier build: collected, not sent again
                    tally.in_open_batches += 1
                elif key in tally.seen:
                    tally.deduplicated += 1
                tally.seen.add(key)
            new = [k for k in prompts if k not in cached and k not in waiting and k not in tally.keys]
            for k in new:
                tally.keys[k] = 0
        counts = {k: self.shared.tokens[k] if k in self.shared.tokens else tally.counter.count(prompts[k]) for k in new}
        rows = []
        for key in keys:
            if key is None:
                judgment = Judgment(judge=config.name, task=task_name, aspect=aspect, error=PLANNED)
            elif key in cached:
                judgment = from_cache(cached[key], judge=config.name, task=task_name, aspect=aspect)
            else:
                judgment = self._stand_in(config.name, task_name, aspect, sizes[key], key)
            rows.append(json_line(judgment.result_row()))
        with self.lock:
            self.shared.tokens.update(counts)
            tally.keys.update(counts)
            self.unknown_verdicts += sum(1 for k in keys if k is not None and k not in cached)
        return array_from_json_lines(rows, RESULT_TYPE)

    def plan_of(self, name: str, tally: "_Tally | None" = None) -> JudgePlan:
        """A judge's plan from its counts in this run (or `tally`, e.g. two runs' union)."""
        source = self.escalated_from.get(name)  # only an escalation when the judge escalating was asked here:
        # a stronger judge that is itself the panel (vars.judges: [big]) judges every pair
        return replace(judge_plan(tally or self.tallies[name], *self._seen_in_cache(name)),
                       escalated_from=source if source in self.tallies else None)

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
        token_count_why=getattr(t.counter, "why", None), in_open_batches=t.in_open_batches,
        budget=b.as_dict() if b is not None else {}, over_budget=tuple(over))


def completion_window_seconds(window: str) -> float | None:
    """A batch's completion window ("24h", "90m") in seconds, None when it is not written that way."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(window[:-1]) * units[window[-1]]
    except (KeyError, ValueError, IndexError):
        return None


def union(a: _Tally | None, b: _Tally | None) -> _Tally:
    """Two runs' counts of one judge together: every request either would send (rows counted as in `b`)."""
    if a is None or b is None:
        return a or b
    out = _Tally(b.config, b.serial, b.counter, b.batch)
    out.rows, out.cached, out.deduplicated, out.unjudgeable = b.rows, b.cached, b.deduplicated, b.unjudgeable
    out.in_open_batches = b.in_open_batches
    out.keys = {**a.keys, **b.keys}
    return out


def run_plan(project: Project, select: tuple[str, ...], exclude: tuple[str, ...], judge: str | None = None,
             full_refresh: bool = False, state: str | Path | None = None, max_cost: float | None = None,
             refresh_judgments: bool = False) -> Plan:
    """Build the selected models on a copy of the warehouse with a Planner as the judge, and again with other
    stand-ins for the verdicts the cache does not hold when the first run met any (see the module). With
    budgets or `max_cost` (--max-cost), each judge's plan says how many of its requests they let through."""
    max_drop_rate(project.vars)  # what a build checks before anything runs, checked here too
    plan = _run_plan(project, select, exclude, judge, full_refresh, state, refresh_judgments)
    tallies = plan.pop("tallies")
    fits = within_budgets([(name, t.config, t.keys.values(), plan["judges"][name].completion_tokens /
                            max(1, plan["judges"][name].requests), t.batch) for name, t in tallies.items()], max_cost)
    judges = tuple(replace(p, within_budget=fits.get(name)) for name, p in plan["judges"].items())
    unpriced = [f"WARNING --max-cost: judge {name} has no `price:`, so its requests count nothing against the cap"
                for name, t in tallies.items() if max_cost is not None and t.config.price is None and not t.serial]
    smoke = ["WARNING " + SMOKE_TEST_WARNING] if any(is_smoke_test(t.config) for t in tallies.values()) else []
    return Plan(judges, plan["models"], plan["errors"], max_cost_usd=max_cost,
                warnings=plan["warnings"] + tuple(unpriced + smoke))


def _run_plan(project: Project, select, exclude, judge, full_refresh, state, refresh_judgments=False) -> dict:
    """The plan's runs: {judges: name -> JudgePlan, tallies: name -> the counts it came from, models, errors}."""
    shared = Shared()

    def run(unknown: str) -> tuple[Planner, list[str], list[str], list[str]]:
        planner = Planner(project.judgment_cache, unknown, shared)
        try:
            models, errors, warnings = _build_with(project, planner, select, exclude, judge, full_refresh, state,
                                                   refresh_judgments)
        except BaseException:
            planner.close()
            raise
        return planner, models, errors, warnings

    known, models, errors, warnings = run("none")
    runs = [known]
    try:
        names = list(known.tallies)
        plans = {name: known.plan_of(name) for name in names}
        tallies = dict(known.tallies)
        if known.unknown_verdicts:
            upper = run("tie")[0]
            runs.append(upper)
            names += [n for n in upper.tallies if n not in known.tallies]
            tallies = most = {n: union(known.tallies.get(n), upper.tallies.get(n)) for n in names}
            if upper.escalated_from:  # a tie escalates: what a judge that keeps its pair asks after it is not
                clear = run("clear")[0]  # asked there (the uncertain check's swapped pass by that judge)
                runs.append(clear)
                names += [n for n in clear.tallies if n not in names]
                tallies = most = {n: union(most.get(n), clear.tallies.get(n)) for n in names}
            plans = {n: upper.plan_of(n, most[n]) for n in names}
            unsure = [n for n in names if len(most[n].keys) > len(known.tallies[n].keys if n in known.tallies else ())]
            drawn = upper if not any(known.verdicts_of(n) for n in unsure) else run("sample")[0]
            if drawn is not upper:
                runs.append(drawn)
            for n in names:
                at_least = len(known.tallies[n].keys) if n in known.tallies else 0
                if n not in unsure:
                    plans[n] = replace(plans[n], requests_at_least=at_least)
                    continue
                estimate = None
                verdicts = known.verdicts_of(n)
                if drawn is not upper and verdicts:
                    e = drawn.plan_of(n, union(known.tallies.get(n), drawn.tallies.get(n)))
                    estimate = {"requests": e.requests, "prompt_tokens": e.prompt_tokens,
                                "completion_tokens": e.completion_tokens, "cost_usd": e.cost_usd, "seconds": e.seconds,
                                "from_cached_verdicts": min(verdicts, SAMPLES),
                                "taken_as_ties": drawn.unsampled_of.get(n, 0)}
                plans[n] = replace(plans[n], requests_count="upper_bound", requests_at_least=at_least,
                                   estimate=estimate)
        else:
            plans = {n: replace(p, requests_at_least=p.requests) for n, p in plans.items()}
        return {"judges": plans, "tallies": tallies, "models": tuple(models), "errors": tuple(errors),
                "warnings": tuple(warnings)}
    finally:
        for planner in runs:
            planner.close()


def _build_with(project: Project, planner: Planner, select, exclude, judge, full_refresh, state,
                refresh_judgments=False):
    """One run of the plan: the selected models built on a throwaway copy with `planner` as the judge, after
    the checks a build makes before it sends (its data tests' definitions; none is run). Returns the models
    built, the errors of those that failed and the build's warnings, in the user's terms (plan_terms.py)."""
    from ..datatests import load_tests
    from ..runner import Build, BuildOptions, check_export_models

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
                               run_exports=False, judge=judge, planner=planner, state=state,
                               refresh_judgments=refresh_judgments)
        try:
            build = Build(planned, options)
            try:
                load_tests(build.compiler)  # a test a build could not define fails it before anything is sent
                check_export_models(project, build.compiler.models, build.compiler.disabled)  # as build does
                build.run()
            finally:
                build.close()
        except PrefcleanError as exc:
            exc.args = (user_paths(str(exc), scratch, project),)
            raise
        errors, warnings = [], []
        for m in build.results:
            if m.status == "error":
                model = build.compiler.models[m.name]
                shown = str(planned.shown(build.compiler.compiled_path(model)))
                errors.append(user_paths(f"{m.name}: {model_error(m.error, model, shown)}", scratch, project))
            warnings += [w for w in m.warnings if w not in warnings]
        return [m.name for m in build.results if m.status == "success"], errors, warnings
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
