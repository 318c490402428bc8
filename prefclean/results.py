"""What a build, a test run or an export returns: typed results a script or a notebook can read, instead of
lines to parse. The CLI prints them (prefclean/reporter.py); the artifacts in target/ are written from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class JudgingStats:
    """Judge counters (rows are table rows; one request can serve several identical rows)."""

    rows: int = 0  # rows handed to the judge
    cached: int = 0  # rows answered from the judgment cache
    deduplicated: int = 0  # rows that shared a prompt with another row of their batch
    judged: int = 0  # rows judged by a request in this run
    failed: int = 0  # rows left with an error
    requests: int = 0  # requests sent, retries included
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request_seconds: float = 0.0
    refreshed: int = 0  # rows asked again with --refresh-judgments (the cache not consulted)
    not_judged_budget: int = 0  # rows not sent because the judge's budget (or --max-cost) was spent
    cost_usd: float = 0.0  # at the judge's `price`; 0 without one
    paced_by_headers: int = 0  # pauses asked for by the provider's x-ratelimit-* headers
    pending: int = 0  # rows whose request waits in a provider batch (not judged, not failed; the next build)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_counts(cls, counts: dict[str, Any] | None) -> "JudgingStats":
        """From the judge's counter dict (keys it does not know are a bug, so they raise)."""
        return cls(**(counts or {}))

    def __add__(self, other: "JudgingStats") -> "JudgingStats":
        return JudgingStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def __sub__(self, other: "JudgingStats") -> "JudgingStats":
        return JudgingStats(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cost_usd"] = round(out["cost_usd"], 6)  # a sum of floats: 0.004587599999999998 in summary.json
        return out


@dataclass(frozen=True)
class JudgeRun:
    """One judge's work during one model."""

    judge: str
    engine: str  # what the engine says it is (and where batches ran): "openai at http://..., ..."
    stats: JudgingStats

    def lines(self) -> list[str]:
        s = self.stats
        out = [f"judge {self.judge} ({self.engine}): judged {s.judged}, failed {s.failed}, cached {s.cached}, "
               f"deduplicated {s.deduplicated}; requests {s.requests}, retries {s.retries}, 429s {s.rate_limited}, "
               f"tokens {s.prompt_tokens}+{s.completion_tokens}" + (f", ${s.cost_usd:.4f}" if s.cost_usd else "")
               + (f"; not judged (budget) {s.not_judged_budget}" if s.not_judged_budget else "")]
        if s.pending:
            out.append(f"judge {self.judge}: {s.pending} rows not judged: batch pending (the batch ids are in the "
                       "judgment cache; the next build collects what finished)")
        if s.refreshed:
            out.append(f"judge {self.judge}: --refresh-judgments re-asked the judge for {s.refreshed} rows "
                       "(the judgment cache was not consulted; the new answers replace the old ones in it)")
        return out


@dataclass(frozen=True)
class ModelRun:
    """One model of a build. status: success | error | skipped."""

    name: str
    status: str
    materialized: str
    rows: int | None = None  # None for views and ephemeral models (counting a view runs its query)
    seconds: float = 0.0
    error: str | None = None  # why it failed, or why it was skipped
    blocked_by: tuple[str, ...] = ()  # skipped: the failed models it depends on (with --fail-fast: all so far)
    fail_fast: bool = False  # skipped by --fail-fast
    compiled_path: str = ""
    warnings: tuple[str, ...] = ()  # what its UDFs asked to show (the smoke-test judge warning, judge errors)
    judges: tuple[JudgeRun, ...] = ()
    interrupted: bool = False  # Ctrl-C stopped it; the previous version stays

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def judging(self) -> JudgingStats:
        """This model's judge counters, all judges together."""
        return sum((j.stats for j in self.judges), JudgingStats())

    def notes(self) -> list[str]:
        """The lines printed under the model's line, as run_results.json keeps them."""
        return [*self.warnings, *(line for j in self.judges for line in j.lines())]

    def artifact(self) -> dict[str, Any]:
        """The run_results.json entry (its keys predate this class: `model`, `message`)."""
        return {"model": self.name, "status": self.status, "materialized": self.materialized, "rows": self.rows,
                "seconds": self.seconds, "message": self.error or "", "compiled_path": self.compiled_path,
                "notes": self.notes(),
                "judges": [{"judge": j.judge, "engine": j.engine, **j.stats.as_dict()} for j in self.judges]}


@dataclass(frozen=True)
class TestRun:
    """One data test. status: pass | fail | warn | error."""

    __test__ = False  # not a pytest test class

    name: str
    model: str
    status: str
    severity: str = "error"
    failures: int = 0
    message: str = ""
    depends_on: tuple[str, ...] = ()
    path: str = ""
    sql: str = field(default="", repr=False)  # the query that selects failing rows
    definition: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # all of its config

    @classmethod
    def from_result(cls, result) -> "TestRun":
        """From datatests' TestResult (its DataTest and outcome)."""
        t = result.test
        definition = {**asdict(t), "depends_on": sorted(t.depends_on)}
        return cls(t.name, t.model, result.status, t.severity, result.failures, result.message,
                   tuple(sorted(t.depends_on)), t.path, t.sql, definition)

    @property
    def failed(self) -> bool:
        """True when it fails the build: an error-severity test that failed or could not run."""
        return self.status in ("fail", "error") and self.severity == "error"

    def artifact(self) -> dict[str, Any]:
        """The run_results.json entry: the test as declared, and its outcome."""
        return {"name": self.name, "model": self.model, "sql": self.sql, "severity": self.severity,
                "depends_on": list(self.depends_on), "path": self.path, **self.definition,
                "status": self.status, "failures": self.failures, "message": self.message}


@dataclass(frozen=True)
class TestsResult:
    """What `prefclean.test()` returns."""

    __test__ = False

    tests: tuple[TestRun, ...]

    @property
    def ok(self) -> bool:
        return not any(t.failed for t in self.tests)

    def count(self, status: str) -> int:
        return sum(1 for t in self.tests if t.status == status)


@dataclass(frozen=True)
class ExportRun:
    """One export: what it wrote (`detail`) or why it failed (`error`)."""

    name: str
    target: str
    ok: bool
    detail: str = ""
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class ExportsResult:
    exports: tuple[ExportRun, ...]

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.exports)


@dataclass(frozen=True)
class JudgeStatus:
    """One judge of `prefclean judges`: `ok` is False when it cannot work (`status` says why)."""

    name: str
    engine: str
    model: str
    ok: bool
    status: str


@dataclass(frozen=True, repr=False)
class BuildResult:
    """What `prefclean.build()` returns. `ok` is the CLI's exit status 0: every model, error-severity data
    test and export succeeded."""

    ok: bool
    run_id: str
    models: tuple[ModelRun, ...]
    tests: tuple[TestRun, ...] = ()
    exports: tuple[ExportRun, ...] = ()
    exports_skipped: bool = False  # a model or test failed, so the exports did not run
    judging: JudgingStats = field(default_factory=JudgingStats)  # the whole run, every judge
    summary: dict[str, Any] | None = None  # the audit model's summary (target/summary.json)
    seconds: float = 0.0

    def __repr__(self) -> str:  # what a notebook shows for `result`: the counts, not every field of every model
        def counts(items, attr: str) -> str:
            by: dict[str, int] = {}
            for item in items:
                by[getattr(item, attr)] = by.get(getattr(item, attr), 0) + 1
            return f"{len(items)}" + (f" ({', '.join(f'{k} {n}' for k, n in by.items())})" if by else "")

        failed_exports = sum(not e.ok for e in self.exports)
        exports = f"{len(self.exports)}" + (f" ({failed_exports} failed)" if failed_exports else "")
        return (f"BuildResult(ok={self.ok}, models={counts(self.models, 'status')}, "
                f"tests={counts(self.tests, 'status')}, exports={exports}, judging={self.judging}, "
                f"seconds={self.seconds:.2f})")

    def model(self, name: str) -> ModelRun:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"no model '{name}' in this build (built: {', '.join(m.name for m in self.models) or 'none'})")

    def count(self, status: str) -> int:
        """Models with this status (success, error, skipped)."""
        return sum(1 for m in self.models if m.status == status)


@dataclass(frozen=True)
class JudgePlan:
    """What a build would ask one judge (`prefclean plan`). Requests are first attempts: retries add more."""

    name: str
    engine: str
    model: str | None
    rows: int  # rows handed to the judge (both passes of the bias check)
    cached: int  # rows the judgment cache answers
    deduplicated: int  # rows sharing a request with another row
    unjudgeable: int  # rows that cannot be judged (no instruction or response): no request
    requests: int
    prompt_tokens: int
    completion_tokens: int  # expected: the mean seen in the cache for this judge, else max_tokens per request
    completion_tokens_max: int  # max_tokens per request
    completion_tokens_seen: bool  # whether completion_tokens is the cache's mean
    cost_usd: float | None  # at the judge's `price`, with the expected completion; None without a price
    cost_usd_max: float | None
    seconds: float | None  # estimated wall time; None when nothing is known to estimate it from
    seconds_bound_by: str | None  # latency | requests_per_minute | tokens_per_minute | completion_window (a batch's most)
    latency_ms_seen: float | None  # the mean latency of the judge's answered calls in the call log
    token_count: str  # exact | estimated
    budget: dict[str, Any] = field(default_factory=dict)
    over_budget: tuple[str, ...] = ()  # the limits this plan passes: the build would stop there
    token_count_why: str | None = None  # why the count is estimated, where something better was asked for
    # exact, or upper_bound: some requests depend on verdicts not in the cache yet (the uncertain bias check,
    # escalation); `requests` (and its tokens, cost, time) is then the most, `requests_at_least` those sent
    # whatever the verdicts, and `estimate` (requests, prompt_tokens, completion_tokens, cost_usd, seconds,
    # from_cached_verdicts, taken_as_ties) what is expected if unknown verdicts spread like the cached ones
    in_open_batches: int = 0  # a batch judge's rows in a batch an earlier build submitted: collected, not sent
    requests_count: str = "exact"
    requests_at_least: int | None = None
    estimate: dict[str, Any] | None = None
    escalated_from: str | None = None  # the judge that escalates to this one: its rows are at most these
    # with a budget or --max-cost (judge/fits.py): {requests, requests_at_least, cost_usd, stopped_by}, what the
    # limits let through of `requests`; None when no limit applies to this judge
    within_budget: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["over_budget"] = list(self.over_budget)
        return out

    def line(self) -> str:
        cost = "" if self.cost_usd is None else f", ${self.cost_usd:.4f} (at most ${self.cost_usd_max:.4f})"
        # no latency in the call log and no rate limit to go by: say so rather than leave the time out
        unknown = ", time unknown (no latency seen yet, no requests_per_minute or tokens_per_minute)"
        if self.seconds is None:
            secs = unknown if self.requests else ""
        elif self.seconds_bound_by == "completion_window":
            secs = f", at most {self.seconds:g}s (completion_window)"
        else:
            secs = f", ~{self.seconds:g}s ({self.seconds_bound_by})"
        seen = "mean seen" if self.completion_tokens_seen else "max_tokens"
        waiting = f", {self.in_open_batches} in open batches" if self.in_open_batches else ""
        out = (f"judge {self.name}: {self.rows} rows, {self.cached} cached{waiting}, {self.deduplicated} deduplicated -> "
               f"{self.requests} requests; tokens {self.prompt_tokens} prompt ({self.token_count}"
               f"{': ' + self.token_count_why if self.token_count_why else ''}) + "
               f"{self.completion_tokens} completion ({seen}){cost}{secs}")
        if self.requests_count == "upper_bound":
            e = self.estimate
            out += (f"; at most (upper bound): {self.requests_at_least} are sent whatever the first verdicts, the "
                    "rest depend on verdicts not in the cache yet (each taken as a tie); "
                    + (f"estimate ~{e['requests']} requests" + ("" if e["cost_usd"] is None else f", ${e['cost_usd']:.4f}")
                       + f" (unknown verdicts drawn from {e['from_cached_verdicts']} cached ones"
                       + (f", {e['taken_as_ties']} with none to draw from" if e["taken_as_ties"] else "") + ")"
                       if e else "no estimate: no verdict of this judge in the cache to draw from"))
        if self.escalated_from:
            out = (f"judge {self.name}: escalation from {self.escalated_from}, at most (only the pairs "
                   f"{self.escalated_from} is unsure of are sent): " + out.split(": ", 1)[1])
        w = self.within_budget
        if w is None or not self.requests:  # nothing to send: nothing for a budget to stop
            if self.over_budget:
                out += f"; over its budget ({', '.join(self.over_budget)}): the build stops sending there"
            return out
        cost = "" if w["cost_usd"] is None else f", ${w['cost_usd']:.4f}"
        least = "" if w["requests_at_least"] == w["requests"] else \
            f" (at least {w['requests_at_least']} whatever the answers' lengths)"
        also = [b for b in self.over_budget if b != w["stopped_by"]]
        # with no answer of this judge cached, each is taken at max_tokens: the most, and often 10x what one uses
        guess = " (each answer taken at max_tokens, none of this judge's being cached yet: shorter answers leave " \
                "room for more)" if w["stopped_by"] and not self.completion_tokens_seen else ""
        return out + (f"; within budget: {w['requests']} of {self.requests} requests{least}{cost}"
                      + (f", then stopped by {w['stopped_by']}" if w["stopped_by"] else ", all of them")
                      + (f" (also over {', '.join(also)})" if also else "") + guess)


@dataclass(frozen=True)
class Plan:
    """`prefclean plan`: per judge, what a build of the selected models would send. Nothing was sent."""

    judges: tuple[JudgePlan, ...]
    models: tuple[str, ...]  # the models the plan ran (on a throwaway copy of the warehouse)
    errors: tuple[str, ...] = ()  # models that failed in the plan: the build would fail them too
    max_cost_usd: float | None = None  # --max-cost, as the plan was asked to try it
    warnings: tuple[str, ...] = ()  # what the build would warn of before sending (an unread var, ...)

    @property
    def requests(self) -> int:
        return sum(j.requests for j in self.judges)

    @property
    def cost_usd(self) -> float | None:
        costs = [j.cost_usd for j in self.judges if j.cost_usd is not None]
        return round(sum(costs), 6) if costs else None

    def judge(self, name: str) -> JudgePlan:
        for j in self.judges:
            if j.name == name:
                return j
        raise KeyError(f"no judge '{name}' in this plan (planned: {', '.join(j.name for j in self.judges) or 'none'})")

    def as_dict(self) -> dict[str, Any]:
        return {"judges": [j.as_dict() for j in self.judges], "requests": self.requests, "cost_usd": self.cost_usd,
                "models": list(self.models), "errors": list(self.errors), "max_cost_usd": self.max_cost_usd,
                "stopped_by_max_cost": self.stopped_by_max_cost, "warnings": list(self.warnings)}

    @property
    def stopped_by_max_cost(self) -> list[str]:
        """The judges --max-cost stops (a later judge gets nothing once an earlier one spent the cap)."""
        return [j.name for j in self.judges if j.within_budget and str(j.within_budget["stopped_by"]).startswith("--max-cost")]

    def lines(self) -> list[str]:
        # with errors a model did not run: its judge calls are unknown, not absent
        out = [j.line() for j in self.judges] or ([] if self.errors else ["no judge call in the selected models"])
        if len(self.judges) > 1:
            cost = "" if self.cost_usd is None else f", ${self.cost_usd:.4f}"
            out.append(f"total: {self.requests} requests{cost}")
        if self.max_cost_usd is not None:
            fit = sum(j.within_budget["requests"] if j.within_budget else j.requests for j in self.judges)
            stopped = self.stopped_by_max_cost
            out.append(f"--max-cost ${self.max_cost_usd:g}: {fit} of {self.requests} requests fit"
                       + (f"; it stops judge {', '.join(stopped)}" if stopped else ""))
        out += [f"WARNING {w}" if not w.startswith("WARNING") else w for w in self.warnings]
        out += [f"error in {e}" for e in self.errors]
        out.append("nothing was sent: a plan only renders prompts and reads the judgment cache")
        return out
