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
    # The final response is the text after the last "\n\nAssistant:" (split_part -1), the prompt everything
    # before it. String functions only, not a greedy regular expression (10x faster on long transcripts), and
    # the rejected prompt is compared in place (starts_with) rather than cut out.
    marker = "e'\\n\\nAssistant:'"
    prompt_length = "length({t}) - length({t}_last) - 12"
    return f"""select source_row, {_hh_turns('c_prompt')} as messages, c_prompt as prompt_key,
  {_no_leading_space('chosen_last')} as chosen,
  {_no_leading_space('rejected_last')} as rejected,
  case when chosen is null or rejected is null then 'missing_response'
       when not contains(chosen, {marker}) or not contains(rejected, {marker}) then 'no_final_assistant_turn'
       when contains(chosen_last, e'\\n\\nHuman:') or contains(rejected_last, e'\\n\\nHuman:')
         then 'ends_on_user_turn'
       when {prompt_length.format(t='rejected')} <> length(c_prompt) or not starts_with(rejected, c_prompt)
         then 'prompts_differ'
       when not starts_with(c_prompt, e'\\n\\nHuman:') then 'text_before_first_turn'
  end as reason
from (select *, left(chosen, {prompt_length.format(t='chosen')}) as c_prompt
      from (select *, split_part(chosen, {marker}, -1) as chosen_last, split_part(rejected, {marker}, -1) as rejected_last
            from {src}))"""


register_format(Format(
    "hh_rlhf", "dpo", "chosen, rejected: whole '\\n\\nHuman: ... \\n\\nAssistant: ...' transcripts (Anthropic hh-rlhf)",
    _hh, lambda cols, rows: _texts(cols, "chosen", "rejected") and "prompt" not in cols
    and not any(q in cols for q in ORCA_QUESTION) and _looks_like_hh(rows),
    swap=(("chosen", "rejected"),), prompt_key=True))
