"""GBNF grammars that force a judge's answer into the shape the parser reads.

llama.cpp samples only tokens the grammar allows, so even a tiny model answers with exactly one
"#### Output for Text i / Rating / Rationale" block per text (see templates/ultrafeedback.jinja and
parsing.py), or one "Feedback: ... [RESULT] x" line. Free text is one line with a bounded number of
words of bounded length, so the whole answer fits a small `max_tokens` budget instead of being cut off
before the last rating: a character bound is not enough, since a looping tiny model writes "1. 1. 1. ..."
at one or two characters per token.
"""

from __future__ import annotations

RATIONALE_WORDS = 20  # per text: even at 3 tokens a word, two blocks fit the smoke-test judge's 160 tokens
FEEDBACK_WORDS = 80
WORD_CHARS = 20


def _words(name: str, words: int, exclude: str = "") -> str:
    """A rule for one line of 1..`words` space-separated words of 1..WORD_CHARS characters."""
    cls = f"[^ \\n{exclude}]"
    return f'{name} ::= {cls}{{1,{WORD_CHARS}}} (" " {cls}{{1,{WORD_CHARS}}}){{0,{words - 1}}}'


def ratings_grammar(n: int, rationale_words: int = RATIONALE_WORDS) -> str:
    """Exactly n UltraFeedback blocks, in order, then the end of the answer."""
    if n < 1:
        raise ValueError("a ratings grammar needs at least one text")
    blocks = [f'block{i} ::= "#### Output for Text {i}\\nRating: " rating "\\nRationale: " rationale "\\n"'
              for i in range(1, n + 1)]
    return "\n".join([
        "root ::= " + " ".join(f"block{i}" for i in range(1, n + 1)),
        *blocks,
        "rating ::= [1-5]",
        _words("rationale", rationale_words),
    ]) + "\n"


def prometheus_absolute_grammar(feedback_words: int = FEEDBACK_WORDS) -> str:
    """One line: Feedback: ... [RESULT] 1-5. The feedback has no "[", so it holds no stray [RESULT]."""
    return "\n".join([
        'root ::= "Feedback: " feedback " [RESULT] " [1-5] "\\n"',
        _words("feedback", feedback_words, "\\["),
    ]) + "\n"


def prometheus_relative_grammar(feedback_words: int = FEEDBACK_WORDS) -> str:
    """One line: Feedback: ... [RESULT] A (or B)."""
    return "\n".join([
        'root ::= "Feedback: " feedback " [RESULT] " ("A" | "B") "\\n"',
        _words("feedback", feedback_words, "\\["),
    ]) + "\n"
