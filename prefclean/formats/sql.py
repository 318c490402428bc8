"""SQL pieces the format adapters share: the message type, role names, common prefixes, the staged wrapper.

Everything here returns SQL text; DuckDB does the per-row work with list_transform, list_slice, struct
access and regular expressions.
"""

from __future__ import annotations

MESSAGE = "STRUCT(role VARCHAR, content VARCHAR)"
MESSAGES = MESSAGE + "[]"
NO_MESSAGES = f"[]::{MESSAGES}"

# ShareGPT / LLaMA-Factory speaker names -> the chat roles (anything else is kept, lower-cased).
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
          "bard": "assistant", "bing": "assistant", "model": "assistant", "system": "system"}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def role(expr: str) -> str:
    """A speaker name as a chat role."""
    cases = " ".join(f"when '{k}' then '{v}'" for k, v in _ROLES.items())
    return f"(case lower({expr}) {cases} else lower({expr}) end)"


def message(role_sql: str, content_sql: str) -> str:
    return f"struct_pack(role := {role_sql}, content := {content_sql})::{MESSAGE}"


def system_message(system_sql: str) -> str:
    """[system message] when the text is non-empty, else an empty list."""
    return (f"(case when coalesce({system_sql}, '') <> '' then [{message(chr(39) + 'system' + chr(39), system_sql)}] "
            f"else {NO_MESSAGES} end)")


def common_prefix_length(a: str, b: str) -> str:
    """How many leading elements two lists share (element-wise equality; structs compare field by field)."""
    return (f"coalesce(list_position(list_transform(range(1, least(len({a}), len({b})) + 1), "
            f"lambda i: {a}[i] is not distinct from {b}[i]), false) - 1, least(len({a}), len({b})))")


def text_prefix_length(a: str, b: str) -> str:
    """How many leading characters two strings share."""
    return common_prefix_length(f"string_split({a}, '')", f"string_split({b}, '')")


def text_prefix_cut(a: str, shared: str) -> str:
    """Where the shared prompt ends: the common prefix (`shared` characters of `a`), backed off to just after
    its last whitespace so no word is split ("The answer is 4" / "The answer is 5" share "The answer is ")."""
    return f"length(regexp_extract(left({a}, {shared}), '(?s)^(.*\\s)', 1))"


def pair_text(exprs: list[str]) -> str:
    """The fields one after another, each as its length in bytes, ':' and the text (NULL as ''): injective,
    unlike a separator that a field may contain (the same encoding as the pair_text() macro)."""
    parts = [f"strlen(coalesce({e}, '')), ':', coalesce({e}, '')" for e in exprs]
    return f"concat({', '.join(parts)})"


def staged(adapted_sql: str, kind: str, *, prompt_key: bool = False) -> str:
    """The adapter's rows with the checks every format shares, the pair id, the system prompt and the
    final user turn. The adapter's own reason wins over the generic ones.

    The pair id is md5 over the length-prefixed prompt key, chosen and rejected (and the N completions): the
    key is the adapter's `prompt_key` (a text that determines the messages, e.g. hh-rlhf's raw prompt: hashing
    it spares serialising every message to JSON) or else the messages' JSON."""
    missing = {"dpo": "chosen is null or rejected is null", "sft": "chosen is null",
               "completions": "responses is null"}[kind]
    key = "prompt_key" if prompt_key else "to_json(messages)::varchar"
    extra = ["to_json(responses)::varchar"] if kind == "completions" else []
    return f"""select
  source_row,
  md5({pair_text(["__key", "chosen", "rejected"] + extra)}) as pair_id,
  coalesce(list_filter(messages, lambda m: m.role = 'system')[1].content, '') as system,
  messages[-1].content as instruction,
  messages,
  chosen,
  rejected,{" responses::varchar[] as responses," if kind == "completions" else ""}
  case
    when reason is not null then reason
    when messages is null or len(list_filter(messages, lambda m: m.role <> 'system')) = 0 then 'empty_conversation'
    when messages[-1].role <> 'user' then 'prompt_does_not_end_on_user_turn'
    when {missing} then 'missing_response'
  end as excluded_reason
from (select *, {key} as __key from ({adapted_sql}) adapted) adapted"""


def numbered(relation: str) -> str:
    """The source rows with their position (`source_row`, 1-based, before any filter)."""
    return f"select row_number() over () as source_row, * from {relation}"
