"""Chat messages as every message-based format reads them (TRL conversational, OpenAI DPO, LLaMA-Factory,
ShareGPT, SFT messages): one definition of a message's text, so content parts, tool calls and responses of
several messages work the same in all of them.

A message's content is text, or a list of OpenAI-style parts (`[{"type": "text", "text": ...}]`, LLaMA-Factory's
`{"type": "text", "value": ...}`), or JSON when a file mixes the two (DuckDB then reads it as JSON). Its text is
its text parts joined; a part that is not text (an image, audio) cannot be shown to a text judge, so the row is
excluded with the reason `non_text_content`, never judged without it. A message's `tool_calls` are shown after
its text as JSON. Which SQL applies is decided from the column's DuckDB type when the model compiles, so a
plain-text chat costs what it always did.
"""

from __future__ import annotations

from .sql import MESSAGE, quote, role

NON_TEXT_REASON = "non_text_content"
TEXT_PART_TYPES = ("text", "input_text", "output_text")  # chat completions, and the Responses API's names
_TEXT_TYPES = "(" + ", ".join(f"'{t}'" for t in TEXT_PART_TYPES) + ")"


def _split_top_level(text: str) -> list[str]:
    parts, depth, start, quoted = [], 0, 0, False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def struct_fields(sql_type: str | None) -> dict[str, str]:
    """{field: type} of a STRUCT type as DuckDB spells it ('STRUCT("role" VARCHAR, content JSON)'); {} otherwise."""
    if not sql_type or not sql_type.startswith("STRUCT(") or not sql_type.endswith(")"):
        return {}
    fields = {}
    for part in _split_top_level(sql_type[len("STRUCT("):-1]):
        if part.startswith('"'):
            end = part.index('"', 1)
            while part[end + 1:end + 2] == '"':  # a doubled quote inside the name
                end = part.index('"', end + 2)
            name, rest = part[1:end].replace('""', '"'), part[end + 1:]
        else:
            name, _, rest = part.partition(" ")
        fields[name] = rest.strip()
    return fields


def element_type(sql_type: str | None) -> str | None:
    """The element type of a list type ('X[]' -> 'X')."""
    return sql_type[:-2] if sql_type and sql_type.endswith("[]") else None


def _part_text_field(part_type: str) -> str | None:
    fields = struct_fields(part_type)
    names = [n for n in ("text", "value") if n in fields]
    return f"coalesce({', '.join('p.' + quote(n) for n in names)})" if names else None


def content_text(expr: str, sql_type: str) -> str:
    """SQL: the text of a content value of this type (text parts joined; NULL stays NULL)."""
    if sql_type == "JSON":
        parts = f"list_filter(json_extract({expr}, '$[*]'), lambda p: json_extract_string(p, '$.type') in {_TEXT_TYPES})"
        return (f"(case json_type({expr}) when 'VARCHAR' then json_extract_string({expr}, '$') when 'NULL' then null "
                f"when 'ARRAY' then array_to_string(list_transform({parts}, lambda p: "
                f"coalesce(json_extract_string(p, '$.text'), json_extract_string(p, '$.value'))), '') "
                f"else {expr}::varchar end)")
    part = element_type(sql_type)
    text = _part_text_field(part) if part and "type" in struct_fields(part) else None
    if text:
        return (f"array_to_string(list_transform(list_filter({expr}, lambda p: p.\"type\" in {_TEXT_TYPES}), "
                f"lambda p: {text}), '')")
    return f"{expr}::varchar"


def has_non_text(expr: str, sql_type: str) -> str | None:
    """SQL: true when a content value holds a part that is not text; None when its type cannot hold one."""
    if sql_type == "JSON":
        kind = "json_extract_string(p, '$.type')"
        return (f"(json_type({expr}) = 'ARRAY' and len(list_filter(json_extract({expr}, '$[*]'), "
                f"lambda p: {kind} is null or {kind} not in {_TEXT_TYPES})) > 0)")
    part = element_type(sql_type)
    if part and "type" in struct_fields(part):
        return f"(len(list_filter({expr}, lambda p: p.\"type\" is null or p.\"type\" not in {_TEXT_TYPES})) > 0)"
    return None


def _message_text(fields: dict[str, str], content_field: str) -> str:
    column = "m." + quote(content_field)
    text = content_text(column, fields.get(content_field, "VARCHAR"))
    if "tool_calls" not in fields:
        return text
    calls = "m.tool_calls"
    return (f"(case when {calls} is null or json_array_length(to_json({calls})) = 0 then {text} "
            f"else concat_ws(chr(10), nullif({text}, ''), 'tool_calls: ' || to_json({calls})::varchar) end)")


def messages_from(list_sql: str, list_type: str | None, role_field: str = "role",
                  content_field: str = "content") -> str:
    """SQL: a list of chat structs (of DuckDB type `list_type`) as MESSAGES, roles normalised, each message's
    text as content_text() gives it."""
    fields = struct_fields(element_type(list_type))
    return (f"list_transform({list_sql}, lambda m: struct_pack(role := {role('m.' + quote(role_field))}, "
            f"content := {_message_text(fields, content_field)})::{MESSAGE})")


def non_text_in(list_sql: str, list_type: str | None, content_field: str = "content") -> str | None:
    """SQL: true when any message of the list holds a part that is not text; None when none can."""
    fields = struct_fields(element_type(list_type))
    check = has_non_text("m." + quote(content_field), fields.get(content_field, "VARCHAR"))
    return f"coalesce(len(list_filter({list_sql}, lambda m: {check})) > 0, false)" if check else None


def response_text(list_sql: str) -> str:
    """SQL: the text of a response given as MESSAGES: one message's content as it is; several (a tool call, its
    result, the answer) rendered turn by turn, each under its role, so the judge sees the whole response."""
    turns = (f"array_to_string(list_transform({list_sql}, lambda m: '[' || m.role || ']' || chr(10) "
             f"|| coalesce(m.content, '')), chr(10) || chr(10))")
    return f"(case when len({list_sql}) = 1 then {list_sql}[1].content else {turns} end)"


def non_text_reason(checks: list[str | None]) -> str | None:
    """SQL: NON_TEXT_REASON when any of the checks holds, else NULL; None when there is nothing to check."""
    present = [c for c in checks if c]
    return f"case when {' or '.join(present)} then '{NON_TEXT_REASON}' end" if present else None
