"""Read ratings and rationales out of whatever a judge wrote, never raising.

Policy (documented in the README, tested on real judge answers in shared/data/judge_answers_real.jsonl):
- A JSON object with `ratings` (and optionally `rationales`) is read as such, inside ``` fences or not (the
  shape structured output asks for, structured.py); Prometheus tasks' `{"feedback", "score"|"result"}` too.
- Otherwise the answer is split at section headers that name a text ("#### Output for Text 2", "**Text 2:**",
  "Text 2"). Each section gives its text's rating: the first `Rating:` line in it.
- Without headers, the k-th `Rating:` line is the k-th text's rating (a `Type:` line is never a rating).
- A rating is an integer 1-5 read at the start of the value: "4", "**4**", "4 (Very good)", "4/5" and
  "four" all give 4. "N/A", "4.5", "3/10", "0", "6" and a label with no number ("Excellent") give NULL.
- The rationale is the `Rationale:` after the rating line in the same section (else the one before it);
  a missing rationale is NULL. A missing or unreadable rating is NULL.
- When the answer rates a different number of texts than were sent, or any rating is NULL, `error` says
  why; the caller may retry, then records the partial result.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_HEADER = re.compile(r"^[ \t>#*_\-\[(]*(?:output\s+for\s+|rating\s+for\s+|evaluation\s+(?:of|for)\s+)?"
                     r"(?:text|response|generation|answer|output)\s*#?\s*(\d+)\b[^\n]*$", re.IGNORECASE | re.MULTILINE)
_RATING = re.compile(r"^[ \t>#*_\-]*(?:overall\s+)?(?:rating|score)[*_ ]*[:=][*_ ]*(.*)$", re.IGNORECASE | re.MULTILINE)
_RATIONALE = re.compile(r"^[ \t>#*_\-]*(?:rationale|reason(?:ing)?|explanation|justification)[*_ ]*[:=][*_ ]*(.*)$",
                        re.IGNORECASE | re.MULTILINE)
_FIELD = re.compile(r"^[ \t>#*_\-]*(?:type|rating|score|rationale|reason(?:ing)?|explanation|justification)[*_ ]*[:=]",
                    re.IGNORECASE | re.MULTILINE)
_VALUE = re.compile(r"^[\s*_\[(\"']*(?:(\d+(?:[.,]\d+)?)|([A-Za-z/]+))(\s*/\s*(\d+))?")


@dataclass
class Parsed:
    ratings: list[int | None]
    rationales: list[str | None]
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.error is None


def read_rating(value: str) -> tuple[int | None, str | None]:
    """One rating value -> (1..5 or None, why it is None)."""
    m = _VALUE.match(value or "")
    if not m:
        return None, f"no rating in {value[:30]!r}" if value else "empty rating"
    number, word, _, scale = m.groups()
    if scale is not None and scale != "5":
        return None, f"rating on a scale of {scale}"
    if number is not None:
        if not number.isdigit():
            return None, f"non-integer rating {number}"
        rating = int(number)
        return (rating, None) if 1 <= rating <= 5 else (None, f"rating {rating} out of range 1-5")
    word = word.lower()
    if word in _WORDS:
        return _WORDS[word], None
    return None, f"no numeric rating in {value.strip()[:30]!r}"


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip().strip("*_ ").strip()
    return text or None


def _json_body(raw: str) -> str:
    body = raw.strip()
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", body, re.DOTALL)
    return fenced.group(1) if fenced else body


def _from_json(raw: str, n: int) -> Parsed | None:
    body = _json_body(raw)
    if not body.startswith("{"):
        return None
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return Parsed([None] * n, [None] * n, error="answer looks like JSON but does not parse")
    if not isinstance(data, dict) or not isinstance(data.get("ratings"), list):
        return Parsed([None] * n, [None] * n, error="JSON answer has no `ratings` list")
    ratings, reasons = [], []
    for value in data["ratings"]:
        r, why = read_rating(str(value)) if not isinstance(value, bool) else (None, "boolean rating")
        ratings.append(r)
        if why:
            reasons.append(why)
    rationales = [(_clean(str(x)) if x is not None else None) for x in data.get("rationales") or []]
    return _finish(ratings, rationales, n, reasons)


def _sections(raw: str) -> list[tuple[int, str]] | None:
    headers = list(_HEADER.finditer(raw))
    if not headers:
        return None
    out = []
    for i, m in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(raw)
        out.append((int(m.group(1)), raw[m.end():end]))
    return out


def _rating_and_rationale(chunk: str) -> tuple[int | None, str | None, str | None, bool]:
    """(rating, rationale, why-null, found a rating line) for one text's section."""
    rating_m = _RATING.search(chunk)
    if not rating_m:
        rationale = _RATIONALE.search(chunk)
        return None, _clean(rationale.group(1)) if rationale else None, "no `Rating:` line", False
    rating, why = read_rating(rating_m.group(1))
    after = _RATIONALE.search(chunk, rating_m.end())
    before = [m for m in _RATIONALE.finditer(chunk, 0, rating_m.start())]
    rationale_m = after or (before[-1] if before else None)
    rationale = None
    if rationale_m:
        # A rationale runs to the next rating/rationale/header line or a blank line followed by one.
        start = rationale_m.start(1)
        nxt = _FIELD.search(chunk, rationale_m.end())
        stop = nxt.start() if nxt and (not after or nxt.start() > rationale_m.end()) else len(chunk)
        if not after:  # a rationale before the rating ends where the rating line starts
            stop = min(stop, rating_m.start())
        rationale = _clean(chunk[start:stop])
    return rating, rationale, why, True


def _finish(ratings: list, rationales: list, n: int, reasons: list[str]) -> Parsed:
    found = len(ratings)
    ratings = (ratings + [None] * n)[:n]
    rationales = (rationales + [None] * n)[:n]
    error = None
    if found != n:
        error = f"expected {n} rating{'s' if n != 1 else ''}, found {found}"
    elif any(r is None for r in ratings):
        error = "; ".join(reasons) or "unreadable rating"
    return Parsed(ratings, rationales, error)


# One block of exactly the layout the ultrafeedback template asks for and its grammar forces: a header, a rating
# 1-5 alone on its line, an optional one-line rationale, then blank lines (or the end).
_AS_ASKED = re.compile(r"#### Output for Text (\d+)\nRating: ([1-5])(?:\nRationale:[*_ ]*([^\n]*))?\n*")


def _as_asked(raw: str, n: int) -> Parsed | None:
    """The answer read in one pass when it is exactly the layout the prompt asked for, n blocks in order (what
    a well-behaved or grammar-bound judge sends: most answers); None for anything else, which the general
    reader takes. Gives what the general reader gives for such an answer (tests/test_parsing.py checks it):
    ~3 µs instead of ~19 µs, on the judge's event loop, for every answer."""
    if "```" in raw:  # a fenced JSON object anywhere is read as JSON
        return None
    text = raw.strip()
    ratings, rationales = [], []
    pos = 0
    for i in range(1, n + 1):
        m = _AS_ASKED.match(text, pos)
        if m is None or m.group(1) != str(i):
            return None
        ratings.append(int(m.group(2)))
        rationales.append(_clean(m.group(3)))
        pos = m.end()
    return Parsed(ratings, rationales) if pos == len(text) else None


def parse_ratings(raw: str | None, n: int) -> Parsed:
    """Ratings and rationales for n texts out of a judge answer. Never raises."""
    if not raw or not raw.strip():
        return Parsed([None] * n, [None] * n, error="empty answer")
    fast = _as_asked(raw, n)
    return fast if fast is not None else parse_any(raw, n)


def parse_any(raw: str, n: int) -> Parsed:
    """parse_ratings for any layout (the policy above)."""
    as_json = _from_json(raw, n)
    if as_json is not None:
        return as_json
    sections = _sections(raw)
    ratings: list[int | None] = []
    rationales: list[str | None] = []
    reasons: list[str] = []
    if sections:
        by_index: dict[int, tuple] = {}
        for index, chunk in sections:
            result = _rating_and_rationale(chunk)
            if index not in by_index or (by_index[index][0] is None and result[0] is not None):
                by_index[index] = result
        rated = [i for i in by_index if by_index[i][3]]
        if not rated:
            return Parsed([None] * n, [None] * n, error="no `Rating:` line in the answer")
        count = max(rated)
        for i in range(1, count + 1):
            rating, rationale, why, _ = by_index.get(i, (None, None, f"no section for text {i}", False))
            ratings.append(rating)
            rationales.append(rationale)
            if why and rating is None:
                reasons.append(f"text {i}: {why}")
        return _finish(ratings, rationales, n, reasons)
    matches = list(_RATING.finditer(raw))
    if not matches:
        return Parsed([None] * n, [None] * n, error="no `Rating:` line in the answer")
    first_rationale = _RATIONALE.search(raw)
    # "Rationale: ... Rating: 4" order when the answer opens with a rationale and ends with a rating;
    # otherwise each rating owns the rationale that follows it.
    rationale_first = bool(first_rationale and first_rationale.start() < matches[0].start()
                           and _RATIONALE.search(raw, matches[-1].end()) is None)
    for i, m in enumerate(matches):
        if rationale_first:
            start = matches[i - 1].end() if i else 0
            rating, _ = read_rating(m.group(1))
            why = None if rating is not None else read_rating(m.group(1))[1]
            found = list(_RATIONALE.finditer(raw, start, m.start()))
            rationale = _clean(raw[found[-1].start(1):m.start()]) if found else None
        else:
            end = matches[i + 1].start() if i + 1 < len(matches) else len(raw)
            rating, rationale, why, _ = _rating_and_rationale(raw[m.start():end])
        ratings.append(rating)
        rationales.append(rationale)
        if why and rating is None:
            reasons.append(f"text {i + 1}: {why}")
    return _finish(ratings, rationales, n, reasons)


_RESULT = re.compile(r"\[RESULT\]\s*[:\-]?\s*\**\s*([A-Za-z0-9.]+)", re.IGNORECASE)


def parse_verdict(raw: str | None, *, relative: bool) -> tuple[int | str | None, str | None, str | None]:
    """Prometheus-style "Feedback: ... [RESULT] 4" (absolute) or "[RESULT] A" (relative).

    Returns (score 1-5 or 'A'/'B', feedback, error). The last [RESULT] wins.
    """
    if not raw or not raw.strip():
        return None, None, "empty answer"
    as_json = _verdict_from_json(raw, relative)
    if as_json is not None:
        return as_json
    results = list(_RESULT.finditer(raw))
    feedback = raw[: results[-1].start()] if results else raw
    feedback = _clean(re.sub(r"^\s*\**feedback\**\s*:\s*", "", feedback.strip(), flags=re.IGNORECASE))
    if not results:
        return None, feedback, "no [RESULT] in the answer"
    value = results[-1].group(1).strip().rstrip(".")
    if relative:
        letter = value.upper()
        return (letter, feedback, None) if letter in ("A", "B") else (None, feedback, f"result {value!r} is not A or B")
    rating, why = read_rating(value)
    return rating, feedback, why


def _verdict_from_json(raw: str, relative: bool) -> tuple[int | str | None, str | None, str | None] | None:
    """`{"feedback": ..., "score": 4}` or `{..., "result": "A"}` (structured output), or None when not JSON."""
    body = _json_body(raw)
    if not body.startswith("{"):
        return None
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None, None, "answer looks like JSON but does not parse"
    if not isinstance(data, dict):
        return None, None, "JSON answer is not an object"
    feedback = _clean(str(data["feedback"])) if data.get("feedback") is not None else None
    field = "result" if relative else "score"
    value = data.get(field)
    if value is None or isinstance(value, bool):
        return None, feedback, f"JSON answer has no `{field}`"
    if relative:
        letter = str(value).strip().upper()
        return (letter, feedback, None) if letter in ("A", "B") else (None, feedback, f"result {value!r} is not A or B")
    rating, why = read_rating(str(value))
    return rating, feedback, why
