"""Preference formats whose responses are strings: orca, TRL standard, TRL implicit prompt, hh-rlhf."""

from __future__ import annotations

from . import Format, register_format
from .sql import NO_MESSAGES, message, quote, system_message, text_prefix_cut, text_prefix_length

TEXT = "VARCHAR"
ORCA_QUESTION = ("question", "instruction")  # orca_dpo_pairs' name, and the example project's rename


def _texts(cols: dict, *names: str) -> bool:
    return all(cols.get(n) == TEXT for n in names)


def _orca(src: str, cols: dict) -> str:
    question = next(c for c in ORCA_QUESTION if c in cols)
    system = system_message(quote("system")) if "system" in cols else NO_MESSAGES
    return f"""select source_row,
  list_concat({system}, [{message("'user'", quote(question))}]) as messages,
  chosen, rejected, null::varchar as reason
from {src}"""


register_format(Format(
    "orca", "dpo", "system (optional), question or instruction, chosen, rejected: strings (Intel/orca_dpo_pairs)",
    _orca, lambda cols, rows: _texts(cols, "chosen", "rejected") and any(_texts(cols, q) for q in ORCA_QUESTION)
    and (_texts(cols, "system") or "system" not in cols),
    swap=(("chosen", "rejected"),)))


def _trl_standard(src: str, cols: dict) -> str:
    return f"""select source_row, [{message("'user'", "prompt")}] as messages, chosen, rejected,
  null::varchar as reason
from {src}"""


register_format(Format(
    "trl_standard", "dpo", "prompt, chosen, rejected: strings (TRL standard preference format)",
    _trl_standard, lambda cols, rows: _texts(cols, "prompt", "chosen", "rejected"),
    swap=(("chosen", "rejected"),)))


def _trl_implicit(src: str, cols: dict) -> str:
    cut = text_prefix_cut("chosen", "shared")
    return f"""select source_row,
  case when cut > 0 then [{message("'user'", "left(chosen, cut)")}] else {NO_MESSAGES} end as messages,
  substr(chosen, cut + 1) as chosen, substr(rejected, cut + 1) as rejected,
  case when chosen is null or rejected is null then 'missing_response'
       when shared = least(length(chosen), length(rejected)) then 'no_response_after_prompt'
       when cut = 0 then 'no_common_prompt' end as reason
from (select *, {cut} as cut from (select *, {text_prefix_length("chosen", "rejected")} as shared from {src}))"""


def _looks_like_hh(rows: list[dict]) -> bool:
    texts = [r.get("chosen") for r in rows if isinstance(r.get("chosen"), str)]
    return bool(texts) and all(t.lstrip("\n").startswith("Human:") for t in texts)


register_format(Format(
    "trl_implicit", "dpo", "chosen, rejected: strings that both start with the prompt (TRL implicit prompt)",
    _trl_implicit, lambda cols, rows: _texts(cols, "chosen", "rejected") and "prompt" not in cols
    and not any(q in cols for q in ORCA_QUESTION) and not _looks_like_hh(rows),
    swap=(("chosen", "rejected"),)))


def _no_leading_space(text: str) -> str:
    return f"regexp_replace({text}, '^ ', '')"


def _hh_turns(prompt: str) -> str:
    """'\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c' -> [{user, a}, {assistant, b}, {user, c}]: split at each
    Human marker, then each piece at its Assistant markers (string splits, no regular expression). The text
    before the first Human marker is checked separately."""
    content = _no_leading_space("x")
    role = "case when i = 1 then 'user' else 'assistant' end"
    return (f"flatten(list_transform(string_split({prompt}, e'\\n\\nHuman:')[2:], lambda p: "
            f"list_transform(string_split(p, e'\\n\\nAssistant:'), lambda x, i: "
            f"{message(role, content)})))")


def _hh(src: str, cols: dict) -> str:
    # The final response starts at the first "\n\nAssistant:" after the last "\n\nHuman:" (an answer that
    # itself holds "\n\nAssistant:", a model running on, stays one answer), the prompt is everything before it.
    # String functions only (split_part, strpos), not a greedy regular expression (10x faster on long
    # transcripts); the rejected transcript is checked to start with that prompt in place, not cut apart.
    human, assistant = "e'\\n\\nHuman:'", "e'\\n\\nAssistant:'"
    return f"""select source_row, {_hh_turns('c_prompt')} as messages, c_prompt as prompt_key,
  {_no_leading_space('substr(c_tail, c_at + 12)')} as chosen,
  {_no_leading_space('substr(rejected, length(c_prompt) + 13)')} as rejected,
  case when chosen is null or rejected is null then 'missing_response'
       when not contains(chosen, {assistant}) or not contains(rejected, {assistant}) then 'no_final_assistant_turn'
       when c_at = 0 then 'ends_on_user_turn'
       when not starts_with(rejected, c_prompt) or substr(rejected, length(c_prompt) + 1, 12) <> {assistant}
         then 'prompts_differ'
       when contains(substr(rejected, length(c_prompt) + 13), {human}) then 'ends_on_user_turn'
       when not starts_with(c_prompt, {human}) then 'text_before_first_turn'
  end as reason
from (select *, left(chosen, length(chosen) - length(c_tail) + c_at - 1) as c_prompt
      from (select *, strpos(c_tail, {assistant}) as c_at
            from (select *, split_part(chosen, {human}, -1) as c_tail from {src})))"""


register_format(Format(
    "hh_rlhf", "dpo", "chosen, rejected: whole '\\n\\nHuman: ... \\n\\nAssistant: ...' transcripts (Anthropic hh-rlhf)",
    _hh, lambda cols, rows: _texts(cols, "chosen", "rejected") and "prompt" not in cols
    and not any(q in cols for q in ORCA_QUESTION) and _looks_like_hh(rows),
    swap=(("chosen", "rejected"),), prompt_key=True))
