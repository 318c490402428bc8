"""SFT formats (one response per row, graded rather than compared): alpaca, messages, ShareGPT
conversations, prompt/completion. The response goes in `chosen`; `rejected` is NULL."""

from __future__ import annotations

from . import Format, register_format
from .chats import _chat_list
from .messages import messages_from, non_text_in, non_text_reason, response_text
from .sql import NO_MESSAGES, MESSAGES, message, quote, system_message


def _whole_conversation(src: str, conversation: str, non_text: str | None = None) -> str:
    """A conversation whose last message is the response being graded."""
    return f"""select source_row, list_slice(__l, 1, len(__l) - 1) as messages, __l[-1].content as chosen, null::varchar as rejected,
  case when __l is null or len(__l) = 0 then 'empty_conversation'
       when {non_text or 'false'} then 'non_text_content'
       when __l[-1].role <> 'assistant' then 'ends_on_user_turn' end as reason
from (select *, {conversation} as __l from {src})"""


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
    return _whole_conversation(src, messages_from("messages", cols.get("messages")),
                               non_text_in("messages", cols.get("messages")))


register_format(Format(
    "sft_messages", "sft", "messages: a list of {role, content} ending on the assistant's response (chat SFT)",
    _sft_messages, lambda cols, rows: _chat_list(cols.get("messages"), "role", "content") and "chosen" not in cols))


def _sft_sharegpt(src, cols):
    system = system_message(quote("system")) if cols.get("system") == "VARCHAR" else NO_MESSAGES
    conversation = messages_from("conversations", cols.get("conversations"), "from", "value")
    return _whole_conversation(src, f"list_concat({system}, {conversation})")


register_format(Format(
    "sft_sharegpt", "sft", "conversations: a list of {from, value} ending on the gpt turn (ShareGPT SFT)",
    _sft_sharegpt, lambda cols, rows: _chat_list(cols.get("conversations"), "from", "value")
    and "chosen" not in cols and "rejected" not in cols))


def _prompt_completion(src, cols):
    non_text = None
    if cols.get("prompt") == "VARCHAR":
        prompt = f"[{message(chr(39) + 'user' + chr(39), 'prompt')}]"
        completion = f"[{message(chr(39) + 'assistant' + chr(39), 'completion')}]"
    else:
        prompt, completion = (messages_from(c, cols.get(c)) for c in ("prompt", "completion"))
        non_text = non_text_reason([non_text_in(c, cols.get(c)) for c in ("prompt", "completion")])
    # a completion of several messages (a tool call, its result, the answer) is graded as one, turn by turn
    return f"""select source_row, __p as messages, {response_text('__c')} as chosen, null::varchar as rejected,
  case when __c is null or len(__c) = 0 or __c[-1].content is null then 'missing_response'
       when {non_text or 'null'} is not null then {non_text or 'null'}
       when __c[-1].role <> 'assistant' then 'no_final_assistant_turn' end as reason
from (select *, {prompt}::{MESSAGES} as __p, {completion}::{MESSAGES} as __c from {src})"""


register_format(Format(
    "prompt_completion", "sft", "prompt, completion: strings or lists of {role, content} (TRL prompt-completion)",
    _prompt_completion, lambda cols, rows: (cols.get("prompt") == cols.get("completion") == "VARCHAR")
    or (_chat_list(cols.get("prompt"), "role", "content") and _chat_list(cols.get("completion"), "role", "content"))))
