"""The `x-ratelimit-*` headers OpenAI-compatible providers send with every answer, read for pacing.

    x-ratelimit-remaining-requests: 59      x-ratelimit-reset-requests: 1s
    x-ratelimit-remaining-tokens: 149000    x-ratelimit-reset-tokens: 6m0s

The dispatcher waits for the reset when what is left would not cover the next request, instead of
sending it into a 429 (and a retry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def reset_seconds(value: str | None) -> float | None:
    """`1s`, `6m0s`, `20ms`, `1h2m3.5s`, or plain seconds `0.5`; None when unreadable."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RateLimit:
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None  # seconds until the request count is full again
    reset_tokens: float | None = None

    @classmethod
    def from_headers(cls, headers) -> "RateLimit | None":
        """From a response's headers (any mapping with a case-insensitive get); None when it sent none."""
        got = cls(_int(headers.get("x-ratelimit-remaining-requests")), _int(headers.get("x-ratelimit-remaining-tokens")),
                  reset_seconds(headers.get("x-ratelimit-reset-requests")),
                  reset_seconds(headers.get("x-ratelimit-reset-tokens")))
        return got if got != cls() else None

    def wait_for(self, tokens: int) -> float:
        """Seconds to wait before a request needing `tokens` may go: 0 when what is left covers it."""
        wait = 0.0
        if self.remaining_requests is not None and self.remaining_requests <= 0:
            wait = max(wait, self.reset_requests or 0.0)
        if self.remaining_tokens is not None and self.remaining_tokens < tokens:
            wait = max(wait, self.reset_tokens or 0.0)
        return min(wait, 300.0)
