"""One judge batch's rows keyed and answered from the judgment cache, before anything is sent (part of udf.Judging).

A row of a task keyed by its inputs (keys.py) is hashed, not rendered; the cache answers what it holds straight
into the batch's Arrow results; only the rest is rendered, and a rendered prompt the cache holds under its prompt
key (a template edit that left it as it was, a cache from before input keys) is answered from there too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from ..errors import JudgeError
from .dispatch import Request
from .keys import request_key
from .record import RESULT_TYPE, from_cache, from_cache_sql

if TYPE_CHECKING:
    from .udf import JudgeSession

PAUSE_EVERY = 32  # rows rendered between two pauses for the judge loop (~1 ms of rendering)


class BatchKeying:
    """Needs `cache`, `refresh`, `_failure` and `_note_once` (udf.Judging has them)."""

    def _prepare(self, session: JudgeSession, task, task_name: str, aspect: str, part: range, instructions: list,
                 generations: list, references: list, results: list, row_keys: list, distinct: set,
                 pause=None, keys: list | None = None) -> dict[str, Request | int]:
        """Key these rows: key -> its request, or the row to render it from (a task keyed by its inputs, see
        keys.py, whose `keys` the batch computed: only rows the cache does not answer are rendered). A row that
        cannot be judged gets its failure in `results` instead. `pause` is called every PAUSE_EVERY rows, to let
        requests already sent go on."""
        keyed: dict[str, Request | int] = {}
        styled = {} if session.style.default else {"style": session.style}  # a plugin's task may not take it
        inputs = session.inputs
        for i in part:
            # Rendering holds the GIL: pause for the judge loop every few rows rendered (hashing needs none:
            # a pause is a round trip to the loop thread, ~17% of a fully cached rebuild when made per 32 rows).
            if inputs is None and pause is not None and (i - part.start) % PAUSE_EVERY == PAUSE_EVERY - 1:
                pause()
            gens = generations[i]
            if instructions[i] is None or not gens or any(g is None for g in gens):
                results[i] = self._failure(session, task_name, aspect, "missing instruction or generation")
                continue
            if inputs is not None:
                key = keys[i]
                row_keys[i] = key
                if key not in distinct:
                    distinct.add(key)
                    keyed[key] = i
                continue
            try:
                prompt = task.prompt(instructions[i], gens, aspect, references[i], **styled)
            except JudgeError as exc:  # a mistake in the model (unknown aspect...): say it once, not only per row
                results[i] = self._failure(session, task_name, aspect, str(exc))
                self._note_once(str(exc))
                continue
            key = request_key(session.identity, prompt.messages)
            row_keys[i] = key
            if key not in distinct:
                distinct.add(key)
                keyed[key] = self._request(session, task, key, prompt)
        return keyed

    def _request(self, session: JudgeSession, task, key: str, prompt) -> Request:
        engine, style = session.dispatcher.engine, session.style
        return Request(key, prompt.messages, prompt.n,
                       task.grammar(prompt.n, style.rationale) if engine.accepts_grammar else None,
                       task.response_format(prompt.n, style.rationale, style.structured)
                       if style.structured and engine.accepts_schema else None)

    def _add_cached(self, session: JudgeSession, task_name: str, aspect: str, keys: list[str], judgments,
                    outcomes: dict) -> None:
        """The cache's judgments of these keys, straight from DuckDB's Arrow into the batch's results."""
        table, found = self.cache.lookup_table(keys, from_cache_sql(), [session.name, task_name, aspect])
        if not found:
            return
        base = judgments.add_array(result_struct(table))
        for offset, key in enumerate(found):
            outcomes[key] = base + offset

    def _add_answers(self, keys: list, table: pa.Table, at, judgments, outcomes: dict) -> None:
        """A batch's answers from the cache (`JudgmentCache.answers` of its keys) into its results."""
        if not table.num_rows:
            return
        base = judgments.add_array(result_struct(table))
        for key, row in zip(keys, at.tolist()):
            if row >= 0:
                outcomes[key] = base + row

    def _render_missing(self, session: JudgeSession, task, task_name: str, aspect: str, keyed: dict, outcomes: dict,
                        judgments, rows: tuple, results: list, row_keys: list, distinct: set, prompt_keys: dict,
                        part: range, pause=None) -> dict[str, Request]:
        """The requests of the keys the cache did not answer, rendering those keyed by their inputs. One whose
        prompt is cached under its prompt key (a template edit that left it as it was, a cache from before input
        keys) is answered from there, and stored under its new key too."""
        instructions, generations, references = rows
        styled = {} if session.style.default else {"style": session.style}
        requests: dict[str, Request] = {}
        rendered: dict[str, str] = {}  # prompt key -> key
        failed_rows: dict[str, list[int]] | None = None
        rendering = 0
        for key, entry in keyed.items():
            if key in outcomes:
                continue
            if isinstance(entry, Request):
                requests[key] = entry
                continue
            rendering += 1
            if pause is not None and rendering % PAUSE_EVERY == 0:
                pause()
            try:
                prompt = task.prompt(instructions[entry], generations[entry], aspect, references[entry], **styled)
            except JudgeError as exc:  # every row of this key: same fields, same prompt, same error
                if failed_rows is None:
                    failed_rows = {}
                    for i in part:
                        if row_keys[i] is not None:
                            failed_rows.setdefault(row_keys[i], []).append(i)
                for i in failed_rows.get(key, []):
                    results[i] = self._failure(session, task_name, aspect, str(exc))
                    row_keys[i] = None
                distinct.discard(key)
                self._note_once(str(exc))
                continue
            prompt_key = request_key(session.identity, prompt.messages)
            prompt_keys[key] = prompt_key
            rendered[prompt_key] = key
            requests[key] = self._request(session, task, key, prompt)
        if rendered and not self.refresh:
            copies = []
            for prompt_key, row in self.cache.lookup(list(rendered), prompts=True).items():
                key = rendered[prompt_key]
                judgment = from_cache(row, judge=session.name, task=task_name, aspect=aspect, key=key,
                                      prompt_key=prompt_key)
                outcomes[key] = judgments.add(judgment.result_row())
                copies.append(judgment)
            self.cache.store_later(copies, [])
        return requests


def result_struct(table: pa.Table) -> pa.StructArray:
    """The judge UDF's result STRUCTs from a table of its columns (the cache's `from_cache_sql`)."""
    return pa.StructArray.from_arrays([table.column(f.name).combine_chunks().cast(f.type) for f in RESULT_TYPE],
                                      fields=list(RESULT_TYPE))
