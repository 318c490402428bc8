"""Preference formats whose conversations are lists of messages: TRL conversational (explicit and implicit
prompt), ShareGPT / LLaMA-Factory, LLaMA-Factory v1 chosen_messages/rejected_messages, OpenAI DPO."""

from __future__ import annotations

import re

from . import Format, register_format
from .messages import messages_from, non_text_in, non_text_reason, response_text, struct_fields
from .sql import NO_MESSAGES, common_prefix_length, quote, role, system_message


def _fields(sql_type: str | None) -> set[str]:
    """The field names of a STRUCT or STRUCT[] type as DuckDB spells it (top level and nested: enough to
    recognise a layout)."""
    return set(re.findall(r'[(,]\s*"?([A-Za-z_][\w]*)"?\s+[A-Z]', sql_type or ""))


def _chat_list(sql_type: str | None, *names: str) -> bool:
    return bool(sql_type) and sql_type.startswith("STRUCT(") and sql_type.endswith("[]") and set(names) <= _fields(sql_type)


def _final(list_sql: str) -> tuple[str, str]:
    """(the response's text, a reason when it is empty or does not end on an assistant message). A response of
    several messages (a tool call, its result, the answer) is rendered turn by turn (messages.response_text)."""
    return (response_text(list_sql),
            f"case when len({list_sql}) = 0 then 'empty_response' "
            f"when {list_sql}[-1].role <> 'assistant' then 'no_final_assistant_turn' end")


def _explicit(src: str, prompt: str, chosen: str, rejected: str, non_text: str | None = None) -> str:
    """A prompt list and two response lists; `non_text`: SQL giving the non-text reason of the raw row."""
    c_text, c_reason = _final("__c")
    r_text, r_reason = _final("__r")
    return f"""select source_row, __p as messages, {c_text} as chosen, {r_text} as rejected,
  case when __c is null or __r is null then 'missing_response' else coalesce({non_text or 'null'}, {c_reason}, {r_reason}) end as reason
from (select *, {prompt} as __p, {chosen} as __c, {rejected} as __r from {src})"""


def _implicit(src: str, chosen: str, rejected: str, non_text: str | None = None) -> str:
    """Two whole conversations: the prompt is their longest common run of messages, the responses the rest."""
    c_text, c_reason = _final("__c[__k + 1:]")
    r_text, r_reason = _final("__r[__k + 1:]")
    return f"""select source_row, __c[:__k] as messages, {c_text} as chosen, {r_text} as rejected,
  case when __c is null or __r is null then 'missing_response'
       when __k = 0 then 'no_common_prompt'
       else coalesce({non_text or 'null'}, {c_reason}, {r_reason}) end as reason
from (select *, {common_prefix_length('__c', '__r')} as __k
      from (select *, {chosen} as __c, {rejected} as __r from {src}))"""


def _chats(cols: dict, *columns: str) -> tuple[list[str], str | None]:
    """The MESSAGES SQL of each list column (a name, or (SQL, type) for a nested one), and the non-text reason
    over all of them."""
    lists = [(quote(c), cols.get(c)) if isinstance(c, str) else c for c in columns]
    return ([messages_from(sql, sql_type) for sql, sql_type in lists],
            non_text_reason([non_text_in(sql, sql_type) for sql, sql_type in lists]))


# -- TRL conversational ---------------------------------------------------------------------------------------
def _trl_conv(src, cols):
    (prompt, chosen, rejected), non_text = _chats(cols, "prompt", "chosen", "rejected")
    return _explicit(src, prompt, chosen, rejected, non_text)


register_format(Format(
    "trl_conversational", "dpo", "prompt, chosen, rejected: lists of {role, content} (TRL conversational)",
    _trl_conv, lambda cols, rows: all(_chat_list(cols.get(c), "role", "content") for c in ("prompt", "chosen", "rejected")),
    swap=(("chosen", "rejected"),)))


def _trl_conv_implicit(src, cols):
    (chosen, rejected), non_text = _chats(cols, "chosen", "rejected")
    return _implicit(src, chosen, rejected, non_text)


register_format(Format(
    "trl_conversational_implicit", "dpo",
    "chosen, rejected: whole conversations as lists of {role, content} (TRL conversational, implicit prompt)",
    _trl_conv_implicit, lambda cols, rows: "prompt" not in cols
    and all(_chat_list(cols.get(c), "role", "content") for c in ("chosen", "rejected")),
    swap=(("chosen", "rejected"),)))


# -- ShareGPT / LLaMA-Factory ------------------------------------------------------------------------------
def _sharegpt(src, cols):
    system = system_message(quote("system")) if cols.get("system") == "VARCHAR" else NO_MESSAGES
    prompt = f"list_concat({system}, {messages_from('conversations', cols.get('conversations'), 'from', 'value')})"
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
    (chosen, rejected), non_text = _chats(cols, "chosen_messages", "rejected_messages")
    return _implicit(src, chosen, rejected, non_text)


register_format(Format(
    "llamafactory_messages", "dpo",
    "chosen_messages, rejected_messages: whole conversations, content as text or [{type, value}] parts (LLaMA-Factory v1)",
    _lf_messages, lambda cols, rows: all(_chat_list(cols.get(c), "role", "content")
                                         for c in ("chosen_messages", "rejected_messages")),
    swap=(("chosen_messages", "rejected_messages"),)))


# -- OpenAI / Azure DPO -----------------------------------------------------------------------------------------
def _openai(src, cols):
    prompt_list = ('"input".messages', struct_fields(cols.get("input")).get("messages"))
    (prompt, chosen, rejected), non_text = _chats(cols, prompt_list, "preferred_output", "non_preferred_output")
    return _explicit(src, prompt, chosen, rejected, non_text)


register_format(Format(
    "openai_dpo", "dpo", "input.messages, preferred_output, non_preferred_output: lists of {role, content} (OpenAI DPO)",
    _openai, lambda cols, rows: "messages" in _fields(cols.get("input"))
    and all(_chat_list(cols.get(c), "role", "content") for c in ("preferred_output", "non_preferred_output")),
    swap=(("preferred_output", "non_preferred_output"),)))
