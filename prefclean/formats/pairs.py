"""Preference formats whose responses are strings: orca, TRL standard, TRL implicit prompt, hh-rlhf."""

from __future__ import annotations

from . import Format, register_format
from .sql import NO_MESSAGES, message, quote, system_message, text_prefix_cut, text_prefix_length

TEXT = "VARCHAR"
ORCA_QUESTION = ("question", "instruction")  # orca_dpo_pairs' name, and the example project's rename
HH_TURN = "\\n\\n(Human|Assistant):"


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


def _hh_turns(transcript: str) -> str:
    """'\\n\\nHuman: a\\n\\nAssistant: b' -> [{user, a}, {assistant, b}]; the text before the first marker is
    dropped (checked separately)."""
    roles = f"regexp_extract_all({transcript}, '{HH_TURN}', 1)"
    texts = f"regexp_split_to_array({transcript}, '\\n\\n(?:Human|Assistant): ?')"
    return (f"list_transform(range(1, len({roles}) + 1), lambda i: "
            f"{message(f'case when {roles}[i] = ' + chr(39) + 'Human' + chr(39) + ' then ' + chr(39) + 'user' + chr(39) + ' else ' + chr(39) + 'assistant' + chr(39) + ' end', f'{texts}[i + 1]')})")


def _hh(src: str, cols: dict) -> str:
    # The prompt is everything before the last "\n\nAssistant:" (greedy match); the response is what follows.
    last = "regexp_extract({t}, '(?s)^(.*)\\n\\nAssistant:', 1)"
    response = "regexp_replace(substr({t}, length({p}) + length(e'\\n\\nAssistant:') + 1), '^ ', '')"
    last_role = "regexp_extract({t}, '(?s).*\\n\\n(Human|Assistant):', 1)"
    cp, rp = last.format(t="chosen"), last.format(t="rejected")
    return f"""select source_row, original, {_hh_turns('c_prompt')} as messages,
  {response.format(t='chosen', p='c_prompt')} as chosen,
  {response.format(t='rejected', p='r_prompt')} as rejected,
  case when chosen is null or rejected is null then 'missing_response'
       when not contains(chosen, e'\\n\\nAssistant:') or not contains(rejected, e'\\n\\nAssistant:')
         then 'no_final_assistant_turn'
       when {last_role.format(t='chosen')} = 'Human' or {last_role.format(t='rejected')} = 'Human' then 'ends_on_user_turn'
       when c_prompt <> r_prompt then 'prompts_differ'
       when regexp_split_to_array(c_prompt, '\\n\\n(?:Human|Assistant): ?')[1] <> '' then 'text_before_first_turn'
  end as reason
from (select *, {cp} as c_prompt, {rp} as r_prompt from {src})"""


register_format(Format(
    "hh_rlhf", "dpo", "chosen, rejected: whole '\\n\\nHuman: ... \\n\\nAssistant: ...' transcripts (Anthropic hh-rlhf)",
    _hh, lambda cols, rows: _texts(cols, "chosen", "rejected") and "prompt" not in cols
    and not any(q in cols for q in ORCA_QUESTION) and _looks_like_hh(rows),
    swap=(("chosen", "rejected"),)))
