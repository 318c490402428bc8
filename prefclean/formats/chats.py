"""Preference formats whose conversations are lists of messages: TRL conversational (explicit and implicit
prompt), ShareGPT / LLaMA-Factory, LLaMA-Factory v1 chosen_messages/rejected_messages, OpenAI DPO."""

from __future__ import annotations

import re

from . import Format, register_format
from .sql import NO_MESSAGES, common_prefix_length, messages_from, quote, role, system_message


def _fields(sql_type: str | None) -> set[str]:
    """The field names of a STRUCT or STRUCT[] type as DuckDB spells it (top level and nested: enough to
    recognise a layout)."""
    return set(re.findall(r'[(,]\s*"?([A-Za-z_][\w]*)"?\s+[A-Z]', sql_type or ""))


def _chat_list(sql_type: str | None, *names: str) -> bool:
    return bool(sql_type) and sql_type.startswith("STRUCT(") and sql_type.endswith("[]") and set(names) <= _fields(sql_type)


def _parts(sql_type: str) -> bool:
    """content is a list of {type, value} parts, not a string."""
    return bool(re.search(r'"?content"? STRUCT\(', sql_type or ""))


def _final(list_sql: str) -> tuple[str, str]:
    """(the last message's text, a reason when the list is not exactly one final assistant message)."""
    return (f"{list_sql}[-1].content",
            f"case when len({list_sql}) = 0 then 'empty_response' "
            f"when {list_sql}[-1].role <> 'assistant' then 'no_final_assistant_turn' "
            f"when len({list_sql}) > 1 then 'response_has_several_messages' end")


def _explicit(src: str, prompt: str, chosen: str, rejected: str) -> str:
    """A prompt list and two response lists (each ideally one assistant message)."""
    c_text, c_reason = _final("c")
    r_text, r_reason = _final("r")
    return f"""select source_row, p as messages, {c_text} as chosen, {r_text} as rejected,
  case when c is null or r is null then 'missing_response' else coalesce({c_reason}, {r_reason}) end as reason
from (select source_row, {prompt} as p, {chosen} as c, {rejected} as r from {src})"""


def _implicit(src: str, chosen: str, rejected: str) -> str:
    """Two whole conversations: the prompt is their longest common run of messages, the responses the rest."""
    c_text, c_reason = _final("c[k + 1:]")
    r_text, r_reason = _final("r[k + 1:]")
    return f"""select source_row, c[:k] as messages, {c_text} as chosen, {r_text} as rejected,
  case when c is null or r is null then 'missing_response'
       when k = 0 then 'no_common_prompt'
       else coalesce({c_reason}, {r_reason}) end as reason
from (select *, {common_prefix_length('c', 'r')} as k
      from (select source_row, {chosen} as c, {rejected} as r from {src}))"""


# -- TRL conversational ---------------------------------------------------------------------------------------
def _trl_conv(src, cols):
    return _explicit(src, messages_from("prompt"), messages_from("chosen"), messages_from("rejected"))


register_format(Format(
    "trl_conversational", "dpo", "prompt, chosen, rejected: lists of {role, content} (TRL conversational)",
    _trl_conv, lambda cols, rows: all(_chat_list(cols.get(c), "role", "content") for c in ("prompt", "chosen", "rejected")),
    swap=(("chosen", "rejected"),)))


def _trl_conv_implicit(src, cols):
    return _implicit(src, messages_from("chosen"), messages_from("rejected"))


register_format(Format(
    "trl_conversational_implicit", "dpo",
    "chosen, rejected: whole conversations as lists of {role, content} (TRL conversational, implicit prompt)",
    _trl_conv_implicit, lambda cols, rows: "prompt" not in cols
    and all(_chat_list(cols.get(c), "role", "content") for c in ("chosen", "rejected")),
    swap=(("chosen", "rejected"),)))


# -- ShareGPT / LLaMA-Factory ------------------------------------------------------------------------------
def _sharegpt(src, cols):
    system = system_message(quote("system")) if cols.get("system") == "VARCHAR" else NO_MESSAGES
    prompt = f"list_concat({system}, {messages_from('conversations', 'from', 'value')})"
    one = "[struct_pack(role := {r}, content := {c}.value)]"
    as_list = lambda col: (f"case when {col} is null then null else "  # noqa: E731
                           + one.format(r=role(f'{col}."from"'), c=col) + " end")
    return _explicit(src, prompt, as_list("chosen"), as_list("rejected"))


def _struct(sql_type: str | None, *names: str) -> bool:
    return bool(sql_type) and sql_type.startswith("STRUCT(") and not sql_type.endswith("[]") and set(names) <= _fields(sql_type)


register_format(Format(
    "sharegpt", "dpo",
    "conversations: list of {from, value}; chosen, rejected: {from, value} (ShareGPT / LLaMA-Factory preference)",
    _sharegpt, lambda cols, rows: _chat_list(cols.get("conversations"), "from", "value")
    and _struct(cols.get("chosen"), "from", "value") and _struct(cols.get("rejected"), "from", "value"),
    swap=(("chosen", "rejected"),)))


# -- LLaMA-Factory v1: chosen_messages / rejected_messages with content parts --------------------------------
def _lf_messages(src, cols):
    chosen = messages_from("chosen_messages", parts=_parts(cols["chosen_messages"]))
    rejected = messages_from("rejected_messages", parts=_parts(cols["rejected_messages"]))
    return _implicit(src, chosen, rejected)


register_format(Format(
    "llamafactory_messages", "dpo",
    "chosen_messages, rejected_messages: whole conversations, content as text or [{type, value}] parts (LLaMA-Factory v1)",
    _lf_messages, lambda cols, rows: all(_chat_list(cols.get(c), "role", "content")
                                         for c in ("chosen_messages", "rejected_messages")),
    swap=(("chosen_messages", "rejected_messages"),)))


# -- OpenAI / Azure DPO -----------------------------------------------------------------------------------------
def _openai(src, cols):
    return _explicit(src, messages_from('"input".messages'), messages_from("preferred_output"),
                     messages_from("non_preferred_output"))


register_format(Format(
    "openai_dpo", "dpo", "input.messages, preferred_output, non_preferred_output: lists of {role, content} (OpenAI DPO)",
    _openai, lambda cols, rows: "messages" in _fields(cols.get("input"))
    and all(_chat_list(cols.get(c), "role", "content") for c in ("preferred_output", "non_preferred_output")),
    swap=(("preferred_output", "non_preferred_output"),)))
