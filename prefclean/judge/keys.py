"""Judgment-cache keys: from a row's inputs where the prompt is a function of them, else from the rendered prompt.

A cached row needs no prompt: rendering it through Jinja only to hash the result was ~40% of a fully cached
rebuild. For tasks that declare `keys_from_inputs` (prefclean's own), the key is a hash of the judge's identity,
the source of every template the task renders (the project's `judge_templates/` first, and whatever they include,
import or extend), the source of the task's code and Jinja's version, and the row's fields (instruction,
generations, aspect, reference). Anything that can change the rendered prompt is in it; a template that names
another template through a variable (`{% include name %}`) cannot be followed, so such a task keys on the
rendered prompt, as plugin tasks do unless they declare `keys_from_inputs` themselves.

A judgment also keeps its prompt's key (`prompt_key`): a request whose input key is new (a template edit that
left this prompt as it was, a cache written before input keys) is still answered by the judgment of the same
prompt, found once its prompt is rendered for sending.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re

import jinja2
import numpy as np

from .template_tree import template_sources

_HEX16 = re.compile(r"[0-9a-fA-F]*")


def request_key(identity: str, messages: list[dict]) -> str:
    """The key of one request from its rendered prompt (and the prompt key of every judgment)."""
    return hashlib.sha256((identity + json.dumps(messages)).encode()).hexdigest()


def input_key(inputs_identity: str, instruction: str, generations: list, aspect: str, reference) -> str:
    """The key of one row from its fields, for a task whose prompt they determine (see `inputs_identity`)."""
    # ASCII JSON (escapes for the rest): half the cost of UTF-8 output, and any text (a lone surrogate) encodes
    row = json.dumps([instruction, generations, aspect, reference])
    return hashlib.sha256((inputs_identity + "\0" + row).encode()).hexdigest()


def inputs_identity(identity: str, task) -> str | None:
    """What besides a row's fields decides its prompt: the session's identity, the task's templates as rendered
    and the task's code. None when the task's prompts cannot be keyed without rendering them."""
    cls = type(task)
    if not cls.__dict__.get("keys_from_inputs", False):  # declared by the class itself, not inherited
        return None
    digest = hashlib.sha256(f"{identity}\0jinja2 {jinja2.__version__}\0".encode())
    try:
        digest.update(inspect.getsource(inspect.getmodule(cls)).encode())
    except (OSError, TypeError):
        return None
    for name, source, referenced in template_sources(task.env, task.rendered_templates):
        if referenced is None:  # a syntax error: rendering reports it, row by row
            return None
        if any(n is None for n in referenced):  # a template named at render time
            return None
        digest.update(f"{name}\0{source}\0".encode())
    return digest.hexdigest()


def key_hashes(keys: list[str]) -> np.ndarray:
    """The 64-bit hash the cache's key index sorts by (`KEY_HASH_SQL` computes the same in DuckDB): a key's first
    16 hex digits (the keys are SHA-256 hex), or those of its MD5 for any other key."""
    joined = "".join(k[:16] for k in keys)
    if len(joined) == 16 * len(keys) and _HEX16.fullmatch(joined):
        return np.frombuffer(bytes.fromhex(joined), dtype=">u8").astype(np.uint64)
    return np.array([_key_hash(k) for k in keys], dtype=np.uint64)


def _key_hash(key: str) -> int:
    head = key[:16]
    if len(head) == 16 and _HEX16.fullmatch(head):
        return int(head, 16)
    return int(hashlib.md5(key.encode("utf-8", "surrogatepass")).hexdigest()[:16], 16)


def key_hash_sql(column: str) -> str:
    """`key_hashes` of a VARCHAR column, in DuckDB."""
    head = f"{column}[1:16]"
    return (f"case when {column} is null then null when regexp_full_match({head}, '[0-9a-fA-F]{{16}}') "
            f"then ('0x' || {head})::ubigint else ('0x' || md5({column})[1:16])::ubigint end")
