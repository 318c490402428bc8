"""The judge as a DuckDB UDF: what the judge() helper's SQL (helpers.py) calls.

DuckDB hands the UDF up to 2,048 rows per call, from several threads. Per call: key the rows (a task keyed by
its inputs: the whole batch in Arrow, see keys.py; else each rendered prompt), look the keys up in the cache
(a batch it answers whole is returned as the cache's Arrow columns, with no Python object per row), render and
send each distinct missing prompt once (concurrently, through the shared dispatcher; the first 128 rows go out
before the rest is rendered), store successes as they arrive, and return one STRUCT per row. Every failure is caught per row: the row gets NULL ratings and
its error, the build goes on.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import pyarrow as pa

from ..errors import JudgeError
from ..interrupts import INTERRUPTED
from ..migrations import MigrationError
from ..redact import add_secrets_in_use, redact
from ..results import JudgeRun, JudgingStats
from ..udf import RunContext, udf
from .budget import NOT_JUDGED_BUDGET, BudgetGuard, BuildCap, budget_guard
from .cache import JudgmentCache
from .dispatch import Dispatcher, LoopThread, Request, RequestStream, Stats
from .engines import Engine, create_engine, engine_class
from .jsonrows import ArrowRows, array_from_json_lines, json_line
from .judges import SMOKE_TEST_JUDGE, SMOKE_TEST_WARNING, is_smoke_test, resolve_judge, smoke_test_judge
from .progress import JudgeProgress
from .arrays import from_numpy
from .keys import input_keys, inputs_identity
from .keying import BatchKeying, result_struct
from .record import RESULT_SQL, RESULT_TYPE, Judgment, from_cache_sql
from .tasks import Style, make_task

FIRST_PART = 128  # rows of a batch sent before the rest is rendered
FLUSH_EVERY = 4096  # pending cache rows (one DuckDB transaction per flush: flushing every few hundred rows
# cost a fifth of the CPU at high throughput)
FLUSH_SECONDS = 0.5  # ...or this old: Ctrl-C or a crash loses little, and the flush after the last answer is short


@dataclass
class JudgeSession:
    """Everything one named judge needs during one build."""

    name: str
    dispatcher: Dispatcher
    identity: str
    smoke_test: bool
    progress: JudgeProgress
    stats: Stats  # this judge's counters in this build (a panel's judges each count their own rows)
    reported: JudgingStats  # its counters when its last model ended
    style: Style = Style()  # how the judge is asked to answer (rationale, structured output)
    batch: "BatchJudging | None" = None  # a batch engine's requests (batching.py) instead of the dispatcher
    answered: int = 0  # requests the judge answered in this build (see judge_batch: when none ever is)
    inputs: str | None = None  # what keys a row from its fields (keys.py); None: keyed by its rendered prompt


class Judging(BatchKeying):
    """Per-build state shared by all judge UDF calls: sessions, cache, stats, progress."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.project = ctx.project
        self.lock = threading.Lock()
        self.sessions: dict[tuple[str, str], JudgeSession] = {}
        self.batch_state: dict = {}  # per batch judge: what its sessions share (batching.Shared)
        self.cap = BuildCap(ctx.options.max_cost_usd)  # --max-cost: every judge together
        self.budgets: dict[str, BudgetGuard] = {}  # per judge name (its tasks share one budget)
        self.earlier_cost: dict[str, float | None] = {}  # per judge: its mean cost per call in earlier builds
        add_secrets_in_use(self.project.judges.values())  # masked in every error and answer from here on
        self.cache = judgment_cache(ctx)
        self.started = self.cache.clock()  # calls logged before this are earlier builds'
        self.refresh = ctx.options.refresh_judgments
        self.loop = LoopThread.get()
        self.executor = self._make_executor()
        ctx.closers.append(self.close)
        ctx.model_end_hooks.append(self.model_notes)
        ctx.model_finishers.append(self.finish_batches)
        ctx.summaries.append(lambda: {"judging": self.totals().as_dict(), "judges": self.per_judge()})

    def _make_executor(self):
        kind = self.ctx.options.executor or (self.project.executor or {}).get("type") or "local"
        if kind == "ray":
            from .ray_executor import RayExecutor

            return RayExecutor(self.project, self.ctx.options.ray_address)
        return None

    def task(self, name: str):
        return judge_task(self.ctx, name)

    def session(self, judge_name: str, task_name: str) -> JudgeSession:
        config = resolve_judge(self.project, judge_name, self.ctx.options.judge_override)
        key = (config.name, task_name)
        with self.lock:
            if key not in self.sessions:
                engine = _opened_engine(self.ctx, config) or create_engine(config)
                task = judge_task(self.ctx, task_name, compact=is_smoke_test(config))
                stats = Stats()
                if config.name not in self.budgets:  # with the judge's tokenizer when a limit counts tokens
                    self.budgets[config.name] = budget_guard(config, self.project.root, self.cap,
                                                             batch=getattr(engine, "batch", False))
                budget = self.budgets[config.name]
                if self.cap.max_cost_usd is not None and config.price is None and not engine.serial:
                    self.ctx.note_once(f"WARNING --max-cost: judge {config.name} has no `price:`, so its requests "
                                       "count nothing against the cap")
                dispatcher = Dispatcher(config, engine, task, stats, budget=budget)
                style = judge_style(config)
                identity = session_identity(engine, task_name, dispatcher.params, style, task)
                progress = JudgeProgress(config.name, self.ctx.report)
                self.sessions[key] = JudgeSession(config.name, dispatcher, identity, config.name == SMOKE_TEST_JUDGE,
                                                  progress, stats, JudgingStats(), style,
                                                  inputs=inputs_identity(identity, task))
                if getattr(engine, "batch", False):
                    from .batching import BatchJudging, Shared

                    session = self.sessions[key]
                    session.batch = BatchJudging(self, session, wait=self.ctx.options.batch_wait,
                                                 export_to=self.ctx.options.batch_export,
                                                 shared=self.batch_state.setdefault(config.name, Shared()))
                if config.name == SMOKE_TEST_JUDGE:
                    self.ctx.notes.append("WARNING " + SMOKE_TEST_WARNING)
            return self.sessions[key]

    def finish_batches(self) -> bool:
        """At the end of a model's query: batch judges submit, wait and collect (see batching.py); True when the
        model should be built again from the cache."""
        with self.lock:
            batches = [s.batch for s in self.sessions.values() if s.batch is not None]
        return any([b.finish() for b in batches])

    def model_notes(self) -> list:
        """At the end of each model: a JudgeRun per judge that judged rows in it (and a warning if its
        judgments could not be stored)."""
        notes: list = []
        try:
            self.cache.wait()  # the model's judgments are in the cache before the next model runs
        except Exception as exc:
            notes.append(f"WARNING judgment cache: could not store judgments ({' '.join(str(exc).split())}); "
                         "the model's table has them, a --full-refresh would judge them again")
        with self.lock:
            sessions = list(self.sessions.values())
        for s in sessions:
            s.progress.close()
            self._note_earlier_cost(s)
            now = JudgingStats.from_counts(s.stats.as_dict())
            delta, s.reported = now - s.reported, now
            if delta.rows:
                notes.append(JudgeRun(s.name, redact(f"{s.dispatcher.engine.describe()}{self._where()}"), delta))
        return notes

    def _note_earlier_cost(self, s: JudgeSession) -> None:
        """For a priced judge the cache answered without any request so far: the mean cost of its answered calls
        in the call log, read while the cache is open (what the summary's saved_by_cache prices cached rows at)."""
        if s.name in self.earlier_cost or s.dispatcher.budget.price is None:
            return
        counts = s.stats.as_dict()
        if counts["cached"] and not counts["requests"]:
            try:
                self.earlier_cost[s.name] = self.cache.execute(
                    "select avg(cost_usd) from calls where judge = ? and status = 'ok'", [s.name])[0][0]
            except JudgeError:  # the cache cannot be read: the saving goes unpriced, the build is not hurt
                self.earlier_cost[s.name] = None

    def totals(self) -> JudgingStats:
        """The build's counters, every judge together."""
        with self.lock:
            sessions = list(self.sessions.values())
        return sum((JudgingStats.from_counts(s.stats.as_dict()) for s in sessions), JudgingStats())

    def per_judge(self) -> dict:
        """Each judge's counters in this build, with its spending against its budget and what the cache saved
        (cached rows at the mean cost of the requests it sent)."""
        with self.lock:
            sessions = list(self.sessions.values())
        out: dict[str, dict] = {}
        for s in sessions:
            counts = JudgingStats.from_counts(s.stats.as_dict())
            if s.name in out:
                counts = counts + JudgingStats.from_counts(out[s.name]["stats"])
            out[s.name] = {"stats": counts.as_dict(), **s.dispatcher.budget.report()}
        for name, entry in out.items():
            st = entry["stats"]
            per_request = st["cost_usd"] / st["requests"] if st["requests"] else None
            price = self.budgets[name].price if name in self.budgets else None
            if per_request is None:  # nothing sent in this build: the mean of earlier builds' calls
                per_request = self.earlier_cost.get(name)
            entry["saved_by_cache"] = {"rows": st["cached"], "cost_usd": round(per_request * st["cached"], 6)
                                       if price is not None and per_request is not None else None}
        return out

    def _where(self) -> str:
        return f", {self.executor.describe()}" if self.executor is not None else ""

    def close(self) -> None:
        for s in self.sessions.values():
            s.progress.close()
            try:
                self.loop.run(s.dispatcher.engine.aclose())
            except Exception:
                pass
        if self.executor is not None:
            self.executor.close()

    # -- one UDF call ---------------------------------------------------------------------------------
    def judge_batch(self, task_name: str, judge_name: str, aspect: str, instructions: pa.Array, generations: pa.Array,
                    references: pa.Array) -> pa.Array:
        n_rows = len(instructions)
        session = self.session(judge_name, task_name)
        task = session.dispatcher.task  # the smoke-test judge's is the compact one
        task.check(aspect)
        batch = session.batch
        if batch is not None:
            batch.begin()  # collects what finished since, before the cache is asked
        keys = cached = None
        if session.inputs is not None:  # keyed by their inputs: the whole batch hashed and looked up at once
            keys = input_keys(session.inputs, instructions, generations, aspect, references)
            if not self.refresh:
                cached = self.cache.answers(keys, from_cache_sql(), [session.name, task_name, aspect])
                if batch is None and (cached[1] >= 0).all():
                    return self._all_cached(session, keys, *cached)
        instructions, generations, references = (a.to_pylist() for a in (instructions, generations, references))
        results: list[Judgment | None] = [None] * n_rows  # rows that cannot be judged: their failure
        row_keys: list[str | None] = [None] * n_rows
        distinct: set[str] = set()
        judgments = ArrowRows(RESULT_TYPE)  # converted to Arrow as they arrive (see jsonrows)
        outcomes: dict[str, int] = {}  # key -> its judgment's position in `judgments`
        prompt_keys: dict[str, str] = {}  # a sent row's key -> its prompt's (stored with its judgment)
        input_keys_ = keys.to_pylist() if keys is not None else None
        if cached is not None:
            self._add_answers(input_keys_, *cached, judgments, outcomes)
        sending = self._sender(session)
        # The first rows are keyed, looked up (rows keyed by their inputs: done above, for the whole batch),
        # rendered and sent on their own, so requests are in flight while the rest of the batch is prepared.
        try:
            for part in (range(0, min(FIRST_PART, n_rows)), range(min(FIRST_PART, n_rows), n_rows)):
                pause = sending.let_loop_run if part.start else None
                prepared = self._prepare(session, task, task_name, aspect, part, instructions, generations,
                                         references, results, row_keys, distinct, pause=pause, keys=input_keys_)
                if not self.refresh and keys is None:
                    self._add_cached(session, task_name, aspect, list(prepared), judgments, outcomes)
                requests = self._render_missing(session, task, task_name, aspect, prepared, outcomes, judgments,
                                                (instructions, generations, references), results, row_keys,
                                                distinct, prompt_keys, part, pause)
                missing = [r for k, r in requests.items() if k not in outcomes]
                if batch is None:
                    sending.add(missing)
                else:  # recorded for the model's batch, or waiting in one: the row is pending (or failed)
                    for judgment in batch.pending(task_name, aspect, {r.key: r for r in missing},
                                                  session.dispatcher.params):
                        outcomes[judgment.key] = judgments.add(judgment.result_row())
                judgments.convert()
        except BaseException:  # nothing will collect what was sent: stop it
            sending.cancel()
            raise
        hits = sum(1 for k in row_keys if k in outcomes)
        keyed = sum(1 for k in row_keys if k)
        batch_counts = {}
        if batch is not None:  # what its rows are: collected in this build, pending or failed (else cached)
            batch_counts = _batch_rows(row_keys, batch)
            hits -= sum(batch_counts.values())
        session.stats.add(rows=n_rows, deduplicated=keyed - len(distinct), cached=hits,
                          refreshed=keyed if self.refresh else 0, **batch_counts)
        session.progress.add_total(n_rows)
        session.progress.advance(n_rows - sum(1 for k in row_keys if k is not None and k not in outcomes),
                                 session.stats.as_dict())
        if sending.expected:
            rows_per_key: dict[str, int] = {}
            for k in row_keys:
                if k is not None and k not in outcomes:
                    rows_per_key[k] = rows_per_key.get(k, 0) + 1
            answered, unanswered = 0, None  # requests in this batch the judge answered; the last it did not
            for arrived in self._receive(session, sending, task_name, aspect, prompt_keys):
                judged = failed = unsent = 0
                for judgment in arrived:
                    count = rows_per_key[judgment.key]
                    outcomes[judgment.key] = judgments.add(judgment.result_row())
                    if judgment.error == NOT_JUDGED_BUDGET:  # not sent: neither answered nor failed
                        unsent += count
                        continue
                    if judgment.error is None:  # an answer that cannot be read judged nothing either
                        answered += 1
                    else:
                        unanswered = judgment
                    judged, failed = (judged + count, failed) if judgment.error is None else (judged, failed + count)
                judgments.convert()
                session.stats.add(judged=judged, failed=failed, not_judged_budget=unsent)
                session.progress.advance(judged + failed + unsent, session.stats.as_dict())
                if unsent:
                    self.ctx.note_once(f"judge {session.name}: budget reached ({session.dispatcher.budget.stopped}): "
                                       f"the rows not sent are marked '{NOT_JUDGED_BUDGET}'; the next build judges them")
            if session.dispatcher.fatal is not None:  # judgments made so far are cached; the model fails
                raise JudgeError(f"judge '{session.name}': {session.dispatcher.fatal}")
            self._check_answered(session, answered, unanswered, list(rows_per_key))
        return judgments.take([outcomes[key] if key is not None else judgments.add(results[i].result_row())
                               for i, key in enumerate(row_keys)])

    def _all_cached(self, session: JudgeSession, keys: pa.Array, table: pa.Table, at) -> pa.Array:
        """A batch the cache answers whole: its rows taken from the cache's Arrow columns, no Python per row."""
        import pyarrow.compute as pc  # imported on first use (see arrays.py)
        n_rows = len(keys)
        session.stats.add(rows=n_rows, deduplicated=n_rows - pc.count_distinct(keys).as_py(), cached=n_rows)
        session.progress.add_total(n_rows)
        session.progress.advance(n_rows, session.stats.as_dict())
        return result_struct(table).take(from_numpy(at))

    def _check_answered(self, session: JudgeSession, answered: int, unanswered, keys: list[str]) -> None:
        """A judge that has answered none of this build's requests fails its model (a server refusing every
        request, nothing listening, only unreadable answers): its rows marked failed would be a success with nothing judged. Unless each
        request was for a row that failed in an earlier build too (in one where the judge answered others): rows
        the judge keeps refusing (a prompt too long, a content filter) stay marked, and the model stands."""
        with self.lock:
            session.answered += answered
            never_answered = session.answered == 0
        if not never_answered or unanswered is None:
            return
        if set(keys) <= self.cache.failed_before(keys, self.started):
            self.ctx.note_once(f"judge {session.name}: the {len(keys)} rows that failed in an earlier build failed "
                               f"again, e.g. {unanswered.error}")
            return
        self.cache.mark_judge_down(keys, self.started)  # so the next build does not take them for bad rows
        raise JudgeError(f"judge '{session.name}': every request failed ({len(keys)} of {len(keys)}), "
                         f"e.g. {unanswered.error}; `prefclean judges` checks the judge")

    def _sender(self, session: JudgeSession):
        """Where a batch's missing requests go: the judge loop (sent as they are added), or a Ray executor
        (sent together once the batch is complete)."""
        if self.executor is None:
            dispatcher = session.dispatcher
            return RequestStream(self.loop, dispatcher.judge_one, 2 * dispatcher.slots, INTERRUPTED)
        return ExecutorBatch(self.executor, session)

    def _receive(self, session: JudgeSession, sending, task_name: str, aspect: str, prompt_keys: dict):
        """Judgments as their answers arrive, a list at a time, storing successes in batches so an interrupt
        loses little."""
        pending_judgments, pending_calls = [], []

        def flush():
            self.cache.store_later(pending_judgments, pending_calls)
            pending_judgments.clear()
            pending_calls.clear()

        try:
            last_flush = time.monotonic()
            engine = session.dispatcher.engine.kind
            for arrived in sending.outcomes():
                made = []
                for o in arrived:
                    pending_calls.extend(o.calls)
                    v = o.verdict
                    judgment = Judgment(v.ratings, v.rationales, v.winner, session.name, o.model, task_name, aspect,
                                        o.raw, v.error, o.prompt_tokens, o.completion_tokens, o.latency_ms,
                                        attempts=o.attempts, key=o.key, engine=engine,
                                        prompt_key=prompt_keys.get(o.key))
                    made.append(judgment)
                    if o.ok:
                        pending_judgments.append(judgment)
                yield made
                if len(pending_judgments) + len(pending_calls) >= FLUSH_EVERY or time.monotonic() - last_flush > FLUSH_SECONDS:
                    flush()
                    last_flush = time.monotonic()
        finally:
            flush()

    def _note_once(self, error: str) -> None:
        self.ctx.note_once(f"judge error: {error}")

    def _failure(self, session, task_name, aspect, error) -> Judgment:
        session.stats.add(failed=1)
        return Judgment(judge=session.name, model=session.dispatcher.engine.model, task=task_name, aspect=aspect,
                        error=error)


def session_identity(engine, task_name: str, params, style: Style = Style(), task=None) -> str:
    """What besides the prompt keys a judgment in the cache: the engine's identity, task, parameters and the
    answer's style (rationale, structured output: nothing added for the default), and the compact grammar's
    bound for the smoke-test judge's compact task (it changes answers, not prompts)."""
    compact = f"|compact_words={task.compact_words}" if task is not None and task.substitutes else ""
    return json.dumps([engine.cache_identity() + style.identity(), task_name, params.max_tokens, params.temperature,
                       params.seed, params.top_p]) + compact


class ExecutorBatch:
    """A batch's missing requests for a Ray executor: sent together when outcomes are first asked for."""

    def __init__(self, executor, session: JudgeSession):
        self.executor, self.session = executor, session
        self.requests: list[Request] = []

    @property
    def expected(self) -> int:
        return len(self.requests)

    def add(self, requests: list[Request]) -> None:
        self.requests.extend(requests)

    def let_loop_run(self) -> None:
        """Nothing is in flight while a batch is prepared."""

    def cancel(self) -> None:
        self.requests.clear()

    def outcomes(self):
        dispatcher = self.session.dispatcher
        for outcome in self.executor.judge(self.session.name, dispatcher.judge, dispatcher.task.name, self.requests,
                                           self.session.stats):
            yield [outcome]


def _batch_rows(row_keys: list, batch) -> dict:
    """A batch judge's rows (several may share a key) by what they are: judged (collected from a batch in this
    build), pending, failed or not sent (the budget); rows cached before are not counted here."""
    rows = {"judged": 0, "pending": 0, "failed": 0, "not_judged_budget": 0}
    for key in row_keys:
        state = batch.state_of(key) if key is not None else None
        if state is not None:
            rows[state] += 1
    return rows


def judge_style(config) -> Style:
    """A judge's `rationale:` and `structured_output:` (only engines that send a schema have the latter)."""
    structured = getattr(config, "structured_output", False)
    return Style(getattr(config, "rationale", "full"), "json_schema" if structured is True else structured or "")


def _array(values) -> pa.Array:
    """One array of plain strings (or lists of them): DuckDB hands large ones under arrow_large_buffer_size (a
    project may set it), which the batch's Arrow keying (keys.py) cannot join with its string scalars."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_large_string(values.type):
        return values.cast(pa.string())
    if pa.types.is_large_list(values.type):
        return values.cast(pa.list_(pa.string()))
    return values


def _judging(ctx: RunContext) -> Judging:
    return ctx.shared("judging", lambda: Judging(ctx))


def judgment_cache(ctx: RunContext) -> JudgmentCache:
    """The build's judgment cache: opened once, by the judge's warm-up or its first batch; closed with the build."""

    def open_cache() -> JudgmentCache:
        if ctx.closed:  # a warm-up that finished after its (short) build
            raise JudgeError("the build is over")
        try:
            cache = JudgmentCache(ctx.project.judgment_cache)
        except MigrationError as exc:  # no row can be judged: the model fails with this line
            raise JudgeError(f"{ctx.project.shown(ctx.project.judgment_cache)}: {exc}") from None
        ctx.file_closers.append(cache.close)  # its checkpoint overlaps the end of the build
        return cache

    return ctx.shared("judgment_cache", open_cache)


def judge_task(ctx: RunContext, name: str, compact: bool = False):
    """The build's task of this name (its templates compiled once, by the warm-up or the first batch);
    `compact`: the smoke-test judge's (see Task.compact_templates)."""
    return ctx.shared(f"judge_task {name}{' compact' if compact else ''}",
                      lambda: make_task(name, ctx.project.root, compact))


def _warm_up(ctx: RunContext) -> None:
    """While the models before the judge run, instead of when its first batch arrives: import the engines of
    the project's judges (aiohttp, huggingface_hub or llama_cpp: 0.1-0.5 s), open the judgment cache (~20 ms),
    compile the default task's prompt templates (~7 ms) and, when every row will be sent, open the default
    judge's connections (_open_connections)."""
    if ctx.options.planner is not None:  # `prefclean plan` opens no cache of its own
        return
    for config in list(ctx.project.judges.values()) or [smoke_test_judge()]:
        engine_class(config.engine, config.name)
    sends_every_row = ctx.options.refresh_judgments or not ctx.project.judgment_cache.exists()  # (before it opens)
    judgment_cache(ctx)
    judge_task(ctx, "ultrafeedback").compile_templates()
    if sends_every_row:
        _open_connections(ctx)


CONNECT_SECONDS = 10.0  # for the connections a warm-up opens (a request's own time-out applies to its own)


def _open_connections(ctx: RunContext) -> None:
    """A build with a new judgment cache (or --refresh-judgments) sends every row it judges: its default judge's
    connections are opened now, beside the models before the judge, and its first requests find them open. Made
    by the first requests instead, 50 loopback connections took ~35 ms on the way to the first answer (the judge
    loop sharing the GIL with the rendering of the batch's rest); a remote judge adds a TLS handshake each."""
    if (ctx.options.executor or (ctx.project.executor or {}).get("type") or "local") != "local":
        return  # Ray's workers have engines of their own
    config = resolve_judge(ctx.project, None, ctx.options.judge_override)
    kind = engine_class(config.engine, config.name)
    if kind.open_connections is Engine.open_connections or getattr(kind, "batch", False) or kind.serial:
        return  # nothing to open (llama.cpp's engine would load its model here: not made twice)
    engine = create_engine(config)
    with ctx.lock:
        if ctx.closed:  # a warm-up that finished after its (short) build
            return
        ctx.state.setdefault(f"opened engine {config.name}", (config, engine))
        ctx.closers.append(lambda: LoopThread.get().run(engine.aclose()))  # (closing twice does nothing)
    LoopThread.get().run(engine.open_connections(CONNECT_SECONDS))


def _opened_engine(ctx: RunContext, config):
    """The engine a warm-up made for this judge and opened connections with (see _open_connections), or None."""
    with ctx.lock:
        opened = ctx.state.pop(f"opened engine {config.name}", None)
    return opened[1] if opened is not None and opened[0] == config else None


@udf("prefclean_judge", params=["VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR[]", "VARCHAR"],
     returns=RESULT_SQL, with_context=True, side_effects=True, warm_up=_warm_up,
     called_via=("judge", "judge_panel", "judge_absolute", "judge_relative"))
def prefclean_judge(ctx: RunContext, task, judge_name, aspect, instruction, generations, reference):
    """Vectorized judge UDF. Any failure is per row: a raise here would fail the whole query."""
    n = len(instruction)
    try:
        if ctx.options.planner is not None:  # `prefclean plan`: count what would be sent, send nothing
            return ctx.options.planner.judge_batch(ctx, task[0].as_py(), judge_name[0].as_py(), aspect[0].as_py(),
                                                   instruction.to_pylist(), generations.to_pylist(),
                                                   reference.to_pylist())
        judging = _judging(ctx)
        return judging.judge_batch(task[0].as_py(), judge_name[0].as_py(), aspect[0].as_py(), _array(instruction),
                                   _array(generations), _array(reference))
    except JudgeError as exc:
        # A configuration problem (unknown judge, engine unavailable, llama-cpp missing): no row can be judged,
        # so the model fails with this one line (the runner reads it here) and its previous version stays.
        ctx.fail(str(exc))
        raise
    except Exception as exc:  # a bug must not kill the query either; the rows carry it
        if INTERRUPTED.is_set():  # Ctrl-C that landed in one of the judge's own DuckDB calls ("Query interrupted")
            raise KeyboardInterrupt from None
        error = redact(f"internal error: {type(exc).__name__}: " + " ".join(str(exc).split()))
    ctx.note_once(f"judge error: {error}")
    return array_from_json_lines([json_line(Judgment(error=error).result_row())] * n, RESULT_TYPE)
