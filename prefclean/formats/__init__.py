"""Dataset format adapters: any common preference or SFT layout in, one staged shape out.

Each format is SQL over DuckDB's list, struct and string functions (never Python per row) that turns a source
relation into rows of:

    source_row  BIGINT                                    the row's position in the source (1-based)
    messages    STRUCT(role VARCHAR, content VARCHAR)[]   the conversation so far, ending on a user turn
    chosen      VARCHAR                                   the final response (an SFT row's only response)
    rejected    VARCHAR                                   the other final response (NULL for SFT)
    responses   VARCHAR[]                                 (completions only) the N completions
    excluded_reason VARCHAR                               why the row does not fit its format (NULL when it does)

plus `pair_id`, `system` and `instruction` (the final user turn), so everything downstream is shared.
The source row itself is not copied into the staged rows (that doubled the bytes a build writes): a model that
writes rows back joins `format_originals()` (the same numbering: `source_row`, `original`) on `source_row`.
Formats register by name, built-ins the same way as a project's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import PrefcleanError

# A format's SQL builder gets the source CTE name and its columns ({name: DuckDB type}) and returns a select
# with the columns: source_row, messages, chosen, rejected, reason (the adapter's own reason or NULL), and
# `prompt_key` when the format sets `prompt_key=True`: a text that determines `messages` (hh-rlhf: the raw
# prompt), so the pair id hashes it instead of the messages' JSON.
SqlBuilder = Callable[[str, dict], str]


class FormatError(PrefcleanError):
    """A source that no format fits, or a format name that does not exist (the user's data or config)."""


@dataclass(frozen=True)
class Format:
    name: str
    kind: str  # "dpo" (two responses), "sft" (one) or "completions" (N, rated, then paired)
    description: str
    build: SqlBuilder
    matches: Callable[[dict, list[dict]], bool]  # (columns, first rows as dicts) -> fits
    swap: tuple[tuple[str, str], ...] = ()  # source columns exchanged when a pair is flipped
    prompt_key: bool = False  # the adapter gives a `prompt_key` column (see SqlBuilder)


FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    FORMATS[fmt.name] = fmt
    return fmt


def _load_builtins() -> None:
    from . import chats, completions, pairs, sft  # noqa: F401  (each registers its formats)


def get_format(name: str) -> Format:
    _load_builtins()
    if name not in FORMATS:
        import difflib

        close = difflib.get_close_matches(name, list(FORMATS), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise FormatError(f"unknown format '{name}'{hint} (one of {', '.join(sorted(FORMATS))})")
    return FORMATS[name]


def all_formats() -> dict[str, Format]:
    _load_builtins()
    return dict(FORMATS)


def staged_rows_sql(relation: str, fmt: Format, columns: dict[str, str], *, original: bool = False) -> str:
    """The staged rows of a relation in this format (see the module docstring for the columns); `original`:
    with the source row as a STRUCT column too."""
    from .sql import numbered, staged

    rows = staged(fmt.build('__numbered', columns), fmt.kind, prompt_key=fmt.prompt_key)
    if original:
        rows = f"select s.*, o.original from ({rows}) s join ({originals_sql(relation)}) o using (source_row)"
    return f"with __numbered as ({numbered(relation)})\n{rows}"


def originals_sql(relation: str) -> str:
    """Every source row as a STRUCT (`original`) with its `source_row`, numbered as the staged rows are."""
    return f"select row_number() over () as source_row, __row as original from {relation} __row"
