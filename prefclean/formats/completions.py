"""N completions per prompt (UltraFeedback-style `instruction` + `completions[]`): every completion is rated,
then the project builds pairs from the ratings (project_template/completions: best vs. a lower-rated one)."""

from __future__ import annotations

from . import Format, register_format
from .chats import _fields
from .sql import message

PROMPTS = ("instruction", "prompt")


def _responses(sql_type: str) -> str | None:
    """SQL for the completions' texts: a list of strings, or of structs with a `response` field."""
    if sql_type == "VARCHAR[]":
        return "completions"
    if sql_type.startswith("STRUCT(") and sql_type.endswith("[]") and "response" in _fields(sql_type):
        return "list_transform(completions, lambda c: c.response::varchar)"
    return None


def _completions(src: str, cols: dict) -> str:
    prompt = next(p for p in PROMPTS if cols.get(p) == "VARCHAR")
    return f"""select source_row, [{message(chr(39) + 'user' + chr(39), prompt)}] as messages,
  null::varchar as chosen, null::varchar as rejected, {_responses(cols['completions'])} as responses,
  case when len(list_filter({_responses(cols['completions'])}, lambda r: r is not null)) < 2
       then 'fewer_than_two_completions' end as reason
from {src}"""


register_format(Format(
    "completions", "completions",
    "instruction (or prompt): string; completions: strings or {response, ...} structs (UltraFeedback-style)",
    _completions, lambda cols, rows: any(cols.get(p) == "VARCHAR" for p in PROMPTS)
    and _responses(cols.get("completions") or "") is not None))
