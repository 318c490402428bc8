"""JSON schemas for structured output: the answer's shape, enforced by the server instead of asked for.

`structured_output: true` on an openai or hf-inference judge sends `response_format: {"type": "json_schema",
"json_schema": {"name", "strict": true, "schema"}}`, which OpenAI, vLLM, SGLang, TGI (through huggingface_hub)
and llama.cpp's server turn into constrained decoding. The schema keeps to the subset every one of them
accepts in strict mode: every property required, no others, enums for ratings, item counts for arrays, no
string lengths. The embedded llama.cpp engine keeps its GBNF grammar (grammar.py), which bounds lengths too.

The shape follows the task and the judge's `rationale:` setting (none | short | full): without rationales
the answer is only the ratings, a handful of completion tokens. The parsers (parsing.py) read these objects.
"""

from __future__ import annotations

RATIONALES = ("none", "short", "full")
RATINGS = [1, 2, 3, 4, 5]


def _fixed_list(items: dict, n: int) -> dict:
    return {"type": "array", "items": items, "minItems": n, "maxItems": n}


def _object(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def ratings_schema(n: int, rationale: str = "full") -> dict:
    """UltraFeedback: one rationale (unless none) and one 1-5 rating per text, in order. The rationales come
    first, so a model explains before it rates."""
    properties = {}
    if rationale != "none":
        properties["rationales"] = _fixed_list({"type": "string"}, n)
    properties["ratings"] = _fixed_list({"type": "integer", "enum": RATINGS}, n)
    return _object(properties)


def prometheus_absolute_schema(rationale: str = "full") -> dict:
    properties = {"feedback": {"type": "string"}} if rationale != "none" else {}
    return _object({**properties, "score": {"type": "integer", "enum": RATINGS}})


def prometheus_relative_schema(rationale: str = "full") -> dict:
    properties = {"feedback": {"type": "string"}} if rationale != "none" else {}
    return _object({**properties, "result": {"type": "string", "enum": ["A", "B"]}})


def response_format(name: str, schema: dict, kind: str = "json_schema") -> dict:
    """The chat-completions `response_format` for a schema: OpenAI's `json_schema` shape (OpenAI, vLLM, SGLang,
    TGI, llama.cpp's C++ server), or `{"type": "json_object", "schema"}`, the form llama-cpp-python's server
    takes (it refuses `json_schema` with a 422)."""
    if kind == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": name.replace("-", "_"), "strict": True, "schema": schema}}
