"""N completions per prompt (UltraFeedback-style `instruction` + `completions[]`, or distilabel's
`generations`): every completion is rated, then the project builds pairs from the ratings
(project_template/completions: best vs. a lower-rated one)."""

from __future__ import annotations

from . import Format, register_format
from .chats import _fields
from .sql import message

PROMPTS = ("instruction", "prompt")
LISTS = ("completions", "generations")  # UltraFeedback's name, distilabel's


def _responses(column: str, sql_type: str) -> str | None:
    """SQL for the completions' texts: a list of strings, or of structs with a `response` field."""
    if sql_type == "VARCHAR[]":
        return column
    if sql_type.startswith("STRUCT(") and sql_type.endswith("[]") and "response" in _fields(sql_type):
        return f"list_transform({column}, lambda c: c.response::varchar)"
    return None


def _list_column(cols: dict) -> str | None:
    return next((c for c in LISTS if _responses(c, cols.get(c) or "") is not None), None)


def _completions(src: str, cols: dict) -> str:
    prompt = next(p for p in PROMPTS if cols.get(p) == "VARCHAR")
    column = _list_column(cols)
    responses = _responses(column, cols[column])
    return f"""select source_row, [{message(chr(39) + 'user' + chr(39), prompt)}] as messages,
  null::varchar as chosen, null::varchar as rejected, {responses} as responses,
  case when len(list_filter({responses}, lambda r: r is not null)) < 2
       then 'fewer_than_two_completions' end as reason
from {src}"""


register_format(Format(
    "completions", "completions",
    "instruction (or prompt): string; completions (or generations): strings or {response, ...} structs "
    "(UltraFeedback-style, distilabel)",
    _completions, lambda cols, rows: any(cols.get(p) == "VARCHAR" for p in PROMPTS)
    and _list_column(cols) is not None and "chosen" not in cols))
