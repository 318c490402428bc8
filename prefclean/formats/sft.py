"""SFT formats (one response per row, graded rather than compared): alpaca, messages, ShareGPT
conversations, prompt/completion. The response goes in `chosen`; `rejected` is NULL."""

from __future__ import annotations

from . import Format, register_format
from .chats import _chat_list
from .sql import NO_MESSAGES, MESSAGES, message, messages_from, quote, system_message


def _whole_conversation(src: str, conversation: str) -> str:
    """A conversation whose last message is the response being graded."""
    return f"""select source_row, list_slice(l, 1, len(l) - 1) as messages, l[-1].content as chosen, null::varchar as rejected,
  case when l is null or len(l) = 0 then 'empty_conversation'
       when l[-1].role <> 'assistant' then 'ends_on_user_turn' end as reason
from (select source_row, {conversation} as l from {src})"""


def _alpaca(src, cols):
    system = system_message(quote("system")) if cols.get("system") == "VARCHAR" else NO_MESSAGES
    history = (f"flatten(list_transform(history, lambda h: [{message(chr(39) + 'user' + chr(39), 'h[1]')}, "
               f"{message(chr(39) + 'assistant' + chr(39), 'h[2]')}]))" if "history" in cols else NO_MESSAGES)
    user = ("instruction || case when coalesce(\"input\", '') <> '' then chr(10) || \"input\" else '' end"
            if "input" in cols else "instruction")
    return f"""select source_row,
  list_concat({system}, coalesce({history}, {NO_MESSAGES}), [{message(chr(39) + 'user' + chr(39), user)}]) as messages,
  output as chosen, null::varchar as rejected,
  case when output is null then 'missing_response' end as reason
from {src}"""


register_format(Format(
    "alpaca", "sft", "instruction, input (optional), output: strings; system, history optional (Alpaca SFT)",
    _alpaca, lambda cols, rows: cols.get("instruction") == "VARCHAR" and cols.get("output") == "VARCHAR"
    and "chosen" not in cols))


def _sft_messages(src, cols):
    return _whole_conversation(src, messages_from("messages"))


register_format(Format(
    "sft_messages", "sft", "messages: a list of {role, content} ending on the assistant's response (chat SFT)",
    _sft_messages, lambda cols, rows: _chat_list(cols.get("messages"), "role", "content") and "chosen" not in cols))


def _sft_sharegpt(src, cols):
    system = system_message(quote("system")) if cols.get("system") == "VARCHAR" else NO_MESSAGES
    return _whole_conversation(src, f"list_concat({system}, {messages_from('conversations', 'from', 'value')})")


register_format(Format(
    "sft_sharegpt", "sft", "conversations: a list of {from, value} ending on the gpt turn (ShareGPT SFT)",
    _sft_sharegpt, lambda cols, rows: _chat_list(cols.get("conversations"), "from", "value")
    and "chosen" not in cols and "rejected" not in cols))


def _prompt_completion(src, cols):
    if cols.get("prompt") == "VARCHAR":
        prompt = f"[{message(chr(39) + 'user' + chr(39), 'prompt')}]"
        completion = f"[{message(chr(39) + 'assistant' + chr(39), 'completion')}]"
    else:
        prompt, completion = messages_from("prompt"), messages_from("completion")
    return f"""select source_row, p as messages, c[-1].content as chosen, null::varchar as rejected,
  case when c is null or len(c) = 0 or c[-1].content is null then 'missing_response'
       when c[-1].role <> 'assistant' then 'no_final_assistant_turn'
       when len(c) > 1 then 'response_has_several_messages' end as reason
from (select source_row, {prompt}::{MESSAGES} as p, {completion}::{MESSAGES} as c from {src})"""


register_format(Format(
    "prompt_completion", "sft", "prompt, completion: strings or lists of {role, content} (TRL prompt-completion)",
    _prompt_completion, lambda cols, rows: (cols.get("prompt") == cols.get("completion") == "VARCHAR")
    or (_chat_list(cols.get("prompt"), "role", "content") and _chat_list(cols.get("completion"), "role", "content"))))
