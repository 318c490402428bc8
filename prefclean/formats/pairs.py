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
    return f"""select source_row, original,
  list_concat({system}, [{message("'user'", quote(question))}]) as messages,
  chosen, rejected, null::varchar as reason
from {src}"""


register_format(Format(
    "orca", "dpo", "system (optional), question or instruction, chosen, rejected: strings (Intel/orca_dpo_pairs)",
    _orca, lambda cols, rows: _texts(cols, "chosen", "rejected") and any(_texts(cols, q) for q in ORCA_QUESTION)
    and (_texts(cols, "system") or "system" not in cols),
    swap=(("chosen", "rejected"),)))


def _trl_standard(src: str, cols: dict) -> str:
    return f"""select source_row, original, [{message("'user'", "prompt")}] as messages, chosen, rejected,
  null::varchar as reason
from {src}"""


register_format(Format(
    "trl_standard", "dpo", "prompt, chosen, rejected: strings (TRL standard preference format)",
    _trl_standard, lambda cols, rows: _texts(cols, "prompt", "chosen", "rejected"),
    swap=(("chosen", "rejected"),)))


def _trl_implicit(src: str, cols: dict) -> str:
    cut = text_prefix_cut("chosen", "shared")
    return f"""select source_row, original,
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


def _hh_turns(prompt: str) -> str:
    """'\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c' -> [{user, a}, {assistant, b}, {user, c}]: split at each
    Human marker, then each piece at its Assistant markers (string splits, no regular expression). The text
    before the first Human marker is checked separately."""
    content = "regexp_replace(x, '^ ', '')"
    role = "case when i = 1 then 'user' else 'assistant' end"
    return (f"flatten(list_transform(string_split({prompt}, e'\\n\\nHuman:')[2:], lambda p: "
            f"list_transform(string_split(p, e'\\n\\nAssistant:'), lambda x, i: "
            f"{message(role, content)})))")


def _hh(src: str, cols: dict) -> str:
    # Split each transcript at "\\n\\nAssistant:": the last piece is the final response, everything before it
    # the prompt (string functions, not a greedy regular expression: 10x faster on long transcripts).
    marker = "e'\\n\\nAssistant:'"
    prompt = "left({t}, length({t}) - length({t}_parts[-1]) - 12)"
    return f"""select source_row, original, {_hh_turns('c_prompt')} as messages,
  regexp_replace(chosen_parts[-1], '^ ', '') as chosen,
  regexp_replace(rejected_parts[-1], '^ ', '') as rejected,
  case when chosen is null or rejected is null then 'missing_response'
       when len(chosen_parts) = 1 or len(rejected_parts) = 1 then 'no_final_assistant_turn'
       when contains(chosen_parts[-1], e'\\n\\nHuman:') or contains(rejected_parts[-1], e'\\n\\nHuman:')
         then 'ends_on_user_turn'
       when c_prompt <> r_prompt then 'prompts_differ'
       when not starts_with(c_prompt, e'\\n\\nHuman:') then 'text_before_first_turn'
  end as reason
from (select *, {prompt.format(t='chosen')} as c_prompt, {prompt.format(t='rejected')} as r_prompt
      from (select *, string_split(chosen, {marker}) as chosen_parts, string_split(rejected, {marker}) as rejected_parts
            from {src}))"""


register_format(Format(
    "hh_rlhf", "dpo", "chosen, rejected: whole '\\n\\nHuman: ... \\n\\nAssistant: ...' transcripts (Anthropic hh-rlhf)",
    _hh, lambda cols, rows: _texts(cols, "chosen", "rejected") and "prompt" not in cols
    and not any(q in cols for q in ORCA_QUESTION) and _looks_like_hh(rows),
    swap=(("chosen", "rejected"),)))
