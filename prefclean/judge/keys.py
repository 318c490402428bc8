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
import pyarrow as pa

from .arrays import from_numpy, list_offsets, string_ends, text, valid
from .template_tree import template_sources

_HEX16 = re.compile(r"[0-9a-fA-F]*")


def request_key(identity: str, messages: list[dict]) -> str:
    """The key of one request from its rendered prompt (and the prompt key of every judgment)."""
    return hashlib.sha256((identity + json.dumps(messages)).encode()).hexdigest()


def input_key(inputs_identity: str, instruction: str, generations: list, aspect: str, reference) -> str:
    """The key of one row from its fields, for a task whose prompt they determine (see `inputs_identity`);
    `input_keys` gives the same for each row of a batch (`prefclean plan` keys one row at a time)."""
    # ASCII JSON (escapes for the rest): half the cost of UTF-8 output, and any text (a lone surrogate) encodes
    row = json.dumps([instruction, generations, aspect, reference])
    return hashlib.sha256((inputs_identity + "\0" + row).encode()).hexdigest()


def input_keys(inputs_identity: str, instructions: pa.Array, generations: pa.Array, aspect: str,
               references: pa.Array) -> pa.Array:
    """`input_key` of every row of a batch as a string array, NULL for a row that cannot be judged (see
    `judgeable`). The JSON text of a row whose fields are printable ASCII, once Arrow has escaped their quotes,
    backslashes, newlines and tabs, is built by Arrow's kernels for the whole batch, and only its SHA-256 is a Python
    call (~1.5 µs a row, against ~4-6 µs for `input_key`); any other row (non-ASCII or other control characters,
    which json.dumps writes as \\u escapes) is keyed by `input_key`. The keys are `input_key`'s, so a cache
    written one row at a time answers a batch and the other way round."""
    import pyarrow.compute as pc  # imported on first use (see arrays.py)
    n = len(instructions)
    offsets = list_offsets(generations)
    flat = generations.values.slice(offsets[0], offsets[-1] - offsets[0])  # every generation, NULL lists' too
    quoted_instructions, slow = _json_strings(instructions)
    quoted_generations, slow_generations = _json_strings(flat)
    quoted_references, slow_references = _json_strings(references)
    slow |= slow_references
    if slow_generations.any():
        slow[np.searchsorted(offsets - offsets[0], np.flatnonzero(slow_generations), side="right") - 1] = True
    per_row = pa.ListArray.from_arrays(from_numpy((offsets - offsets[0]).astype(np.int32)), quoted_generations)
    rows = pc.binary_join_element_wise(  # json.dumps([instruction, generations, aspect, reference])
        text(inputs_identity + "\0["), quoted_instructions, text(", ["), pc.binary_join(per_row, text(", ")),
        text(f"], {json.dumps(aspect)}, "), quoted_references, text("]"), text(""))
    ok = judgeable(instructions, generations)
    ends = string_ends(rows)
    data = memoryview(rows.buffers()[2] or b"")
    sha256 = hashlib.sha256
    digests = [sha256(data[a:b]).digest() if judged else _NO_DIGEST
               for a, b, judged in zip(ends[:-1].tolist(), ends[1:].tolist(), (ok & ~slow).tolist())]
    for i in np.flatnonzero(ok & slow).tolist():
        digests[i] = bytes.fromhex(input_key(inputs_identity, instructions[i].as_py(), generations[i].as_py(), aspect,
                                             references[i].as_py()))
    hex_digits = np.frombuffer(b"".join(digests).hex().encode("ascii"), dtype=np.uint8)
    mask = None if ok.all() else pa.py_buffer(np.packbits(ok, bitorder="little"))
    return pa.StringArray.from_buffers(n, pa.py_buffer(np.arange(0, 64 * (n + 1), 64, dtype=np.int32)),
                                       pa.py_buffer(hex_digits), mask, n - int(ok.sum()))


_NO_DIGEST = bytes(32)  # in the place of a row that has no key (masked out)
# What json.dumps (ensure_ascii) writes for these characters; it leaves printable ASCII (' ' to '~') as it is.
_JSON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def _json_strings(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Each text as json.dumps writes it ('null' for NULL), and which texts Arrow does not write so (one with a
    character json.dumps escapes as \\uXXXX, \\b or \\f): their rows are keyed by `input_key`. Both read the
    texts' bytes with numpy, one pass (a regex per text cost more than the rest of the key)."""
    import pyarrow.compute as pc  # imported on first use (see arrays.py)
    ends = string_ends(texts)
    size = int(ends[-1] - ends[0])
    data = np.frombuffer(texts.buffers()[2], np.uint8, count=size, offset=int(ends[0])) if size else \
        np.empty(0, np.uint8)
    other = (data >= 0x7F) | ((data < 0x20) & (data != 0x09) & (data != 0x0A) & (data != 0x0D))
    slow = np.zeros(len(texts), bool)
    if other.any():
        slow[np.searchsorted(ends - ends[0], np.flatnonzero(other), side="right") - 1] = True
    escaped = texts
    for plain, written in _JSON_ESCAPES:
        if (data == ord(plain)).any():
            escaped = pc.replace_substring(escaped, pattern=plain, replacement=written)
    quoted = pc.binary_join_element_wise(text('"'), escaped, text('"'), text(""))
    return pc.if_else(pc.is_null(texts), text("null"), quoted), slow


def judgeable(instructions: pa.Array, generations: pa.Array) -> np.ndarray:
    """Which rows can be judged: an instruction, and at least one generation, none of them NULL."""
    offsets = list_offsets(generations)
    ok = valid(instructions) & valid(generations) & (np.diff(offsets) > 0)
    flat = generations.values.slice(offsets[0], offsets[-1] - offsets[0])
    if flat.null_count:
        missing = np.flatnonzero(~valid(flat))
        ok[np.searchsorted(offsets - offsets[0], missing, side="right") - 1] = False
    return ok


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


def key_hashes_of(keys: pa.Array) -> np.ndarray:
    """`key_hashes` of a string array without NULLs: read from its buffers when every key is SHA-256 hex."""
    ends = string_ends(keys)
    if len(keys) and (np.diff(ends) == 64).all():
        data = np.frombuffer(keys.buffers()[2], np.uint8, count=int(ends[-1] - ends[0]), offset=int(ends[0]))
        heads = data.reshape(-1, 64)[:, :16].tobytes().decode("ascii", "replace")
        if _HEX16.fullmatch(heads):
            return np.frombuffer(bytes.fromhex(heads), dtype=">u8").astype(np.uint64)
    return key_hashes(keys.to_pylist())


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
