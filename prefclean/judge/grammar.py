"""GBNF grammars that force a judge's answer into the shape the parser reads.

llama.cpp samples only tokens the grammar allows, so even a tiny model answers with exactly one
"#### Output for Text i / Rating / Rationale" block per text (see templates/ultrafeedback.jinja and
parsing.py; the smoke-test judge: one "Score / Reason" pair), or one "Feedback: ... [RESULT] x" line.
Free text is one line with a bounded number of words of bounded length, so the whole answer fits a small
`max_tokens` budget instead of being cut off before the last rating: a character bound is not enough, since
a looping tiny model writes "1. 1. 1. ..." at one or two characters per token.
"""

from __future__ import annotations

RATIONALE_WORDS = 20  # per text: even at 3 tokens a word, two blocks fit the smoke-test judge's 160 tokens
FEEDBACK_WORDS = 80
SHORT = 0.4  # `rationale: short` bounds the free text to this share of the words; `none` leaves it out
WORD_CHARS = 20
COMPACT_WORD_LETTERS = 10


def _words(name: str, words: int, exclude: str = "") -> str:
    """A rule for one line of 1..`words` space-separated words of 1..WORD_CHARS characters."""
    cls = f"[^ \\n{exclude}]"
    return f'{name} ::= {cls}{{1,{WORD_CHARS}}} (" " {cls}{{1,{WORD_CHARS}}}){{0,{words - 1}}}'


def _bound(words: int, rationale: str) -> int:
    return max(1, round(words * SHORT)) if rationale == "short" else words


def ratings_grammar(n: int, rationale: str = "full") -> str:
    """Exactly n UltraFeedback blocks, in order, then the end of the answer (without `Rationale:` lines
    when rationale is none)."""
    if n < 1:
        raise ValueError("a ratings grammar needs at least one text")
    why = ' "\\nRationale: " rationale' if rationale != "none" else ""
    blocks = [f'block{i} ::= "#### Output for Text {i}\\nRating: " rating{why} "\\n"' for i in range(1, n + 1)]
    return "\n".join([
        "root ::= " + " ".join(f"block{i}" for i in range(1, n + 1)),
        *blocks,
        "rating ::= [1-5]",
        *([_words("rationale", _bound(RATIONALE_WORDS, rationale))] if rationale != "none" else []),
    ]) + "\n"


def compact_ratings_grammar(n: int, words: int = 1) -> str:
    """The smoke-test judge's answer: a `Score:4` and a `Reason: <word>` line per text, in order (the parser
    reads the k-th Score line as the k-th text's). Every generated token costs the CPU of ~6 prompt tokens, so
    the labels are the shortest the parser knows (`Score` and `Reason` are one token each, `Rating` two,
    `Rationale` three), and a word starts with its space and has only letters (" clear" is one token; a looping
    model spells at most COMPACT_WORD_LETTERS letters, one a token): 8 tokens a text at best, instead of 13
    (`Rating: ` / `Rationale: `, two words of any characters)."""
    if n < 1:
        raise ValueError("a ratings grammar needs at least one text")
    return "\n".join([
        "root ::= " + " ".join(["block"] * n),
        'block ::= "Score:" [1-5] "\\nReason:" reason "\\n"',
        f'reason ::= (" " [a-zA-Z]{{1,{COMPACT_WORD_LETTERS}}}){{1,{words}}}',
    ]) + "\n"


def _verdict_grammar(result: str, rationale: str) -> str:
    if rationale == "none":
        return f'root ::= "[RESULT] " {result} "\\n"\n'
    return "\n".join([
        f'root ::= "Feedback: " feedback " [RESULT] " {result} "\\n"',
        _words("feedback", _bound(FEEDBACK_WORDS, rationale), "\\["),
    ]) + "\n"


def prometheus_absolute_grammar(rationale: str = "full") -> str:
    """One line: Feedback: ... [RESULT] 1-5. The feedback has no "[", so it holds no stray [RESULT]."""
    return _verdict_grammar("[1-5]", rationale)


def prometheus_relative_grammar(rationale: str = "full") -> str:
    """One line: Feedback: ... [RESULT] A (or B)."""
    return _verdict_grammar('("A" | "B")', rationale)
