"""GBNF grammars that force a judge's answer into the shape the parser reads.

llama.cpp samples only tokens the grammar allows, so even a tiny model answers with exactly one
"#### Output for Text i / Rating / Rationale" block per text (see templates/ultrafeedback.jinja and
parsing.py), or one "Feedback: ... [RESULT] x" line. Free text is one line of bounded length so the whole
answer fits a small `max_tokens` budget instead of being cut off before the last rating.
"""

from __future__ import annotations

RATIONALE_CHARS = 160  # per text, about 40 tokens: two blocks fit well within the smoke-test judge's 160 tokens
FEEDBACK_CHARS = 400


def _line(name: str, chars: int, exclude: str = "") -> str:
    """A rule for one non-empty line of at most `chars` characters (no newline, nor any of `exclude`)."""
    cls = "\\n" + exclude
    return f'{name} ::= [^ {cls}] [^{cls}]{{0,{chars - 1}}}'


def ratings_grammar(n: int, rationale_chars: int = RATIONALE_CHARS) -> str:
    """Exactly n UltraFeedback blocks, in order, then the end of the answer."""
    if n < 1:
        raise ValueError("a ratings grammar needs at least one text")
    blocks = [f'block{i} ::= "#### Output for Text {i}\\nRating: " rating "\\nRationale: " rationale "\\n"'
              for i in range(1, n + 1)]
    return "\n".join([
        "root ::= " + " ".join(f"block{i}" for i in range(1, n + 1)),
        *blocks,
        "rating ::= [1-5]",
        _line("rationale", rationale_chars),
    ]) + "\n"


def prometheus_absolute_grammar(feedback_chars: int = FEEDBACK_CHARS) -> str:
    """"Feedback: <one line> [RESULT] <1-5>"; the feedback cannot contain "[" so it holds no stray [RESULT]."""
    return "\n".join([
        'root ::= "Feedback: " feedback " [RESULT] " [1-5] "\\n"',
        _line("feedback", feedback_chars, "\\["),
    ]) + "\n"


def prometheus_relative_grammar(feedback_chars: int = FEEDBACK_CHARS) -> str:
    """"Feedback: <one line> [RESULT] A" or "... [RESULT] B"."""
    return "\n".join([
        'root ::= "Feedback: " feedback " [RESULT] " ("A" | "B") "\\n"',
        _line("feedback", feedback_chars, "\\["),
    ]) + "\n"
