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
    """The key of one row from its fields, for a task whose prompt they determine (see `inputs_identity`); the
    same as `input_keys` gives the row in a batch (`prefclean plan` keys one row at a time)."""
    row = _field(instruction) + _field(aspect) + _field(reference) + f"{len(generations)}[" + \
        "".join(_field(g) for g in generations)
    return hashlib.sha256((inputs_identity + INPUTS_FORMAT + row).encode("utf-8", "surrogatepass")).hexdigest()


# Each field is its length in UTF-8 bytes, a colon and its text ('n' for NULL), so the concatenation of a row's
# fields can be read back one way only. Length-prefixed rather than JSON: Arrow builds it for a whole batch in C++
# (`input_keys`), where a Python json.dumps per row was most of a cached row's keying. A new format gets a new tag.
INPUTS_FORMAT = "\0inputs-v2\0"


def _field(text: str | None) -> str:
    return "n" if text is None else f"{len(text.encode('utf-8', 'surrogatepass'))}:{text}"


def input_keys(inputs_identity: str, instructions: pa.Array, generations: pa.Array, aspect: str,
               references: pa.Array) -> pa.Array:
    """`input_key` of every row of a batch as a string array, NULL for a row that cannot be judged (see
    `judgeable`): the rows' fields are joined by Arrow, only the hash of each is a Python call (~1.3 µs a row,
    against ~3.7 µs for `input_key` and its lists)."""
    import pyarrow.compute as pc  # imported on first use (see arrays.py)
    n = len(instructions)
    offsets = list_offsets(generations)
    flat = generations.values.slice(offsets[0], offsets[-1] - offsets[0])  # every generation, NULL lists' too
    per_generation = pa.ListArray.from_arrays(from_numpy((offsets - offsets[0]).astype(np.int32)), _fields(flat))
    counts = pc.cast(pc.list_value_length(generations), pa.string())
    nothing = text("")
    rows = pc.binary_join_element_wise(
        text(inputs_identity + INPUTS_FORMAT), _fields(instructions), text(_field(aspect)), _fields(references),
        counts, text("["), pc.binary_join(per_generation, nothing), nothing)
    ok = judgeable(instructions, generations)
    ends = string_ends(rows)
    data = memoryview(rows.buffers()[2] or b"")
    sha256 = hashlib.sha256
    digests = b"".join([sha256(data[a:b]).digest() if judged else _NO_DIGEST
                        for a, b, judged in zip(ends[:-1].tolist(), ends[1:].tolist(), ok.tolist())])
    hex_digits = np.frombuffer(digests.hex().encode("ascii"), dtype=np.uint8)
    mask = None if ok.all() else pa.py_buffer(np.packbits(ok, bitorder="little"))
    return pa.StringArray.from_buffers(n, pa.py_buffer(np.arange(0, 64 * (n + 1), 64, dtype=np.int32)),
                                       pa.py_buffer(hex_digits), mask, n - int(ok.sum()))


_NO_DIGEST = bytes(32)  # in the place of a row that has no key (masked out)


def judgeable(instructions: pa.Array, generations: pa.Array) -> np.ndarray:
    """Which rows can be judged: an instruction, and at least one generation, none of them NULL."""
    offsets = list_offsets(generations)
    ok = valid(instructions) & valid(generations) & (np.diff(offsets) > 0)
    flat = generations.values.slice(offsets[0], offsets[-1] - offsets[0])
    if flat.null_count:
        missing = np.flatnonzero(~valid(flat))
        ok[np.searchsorted(offsets - offsets[0], missing, side="right") - 1] = False
    return ok


def _fields(texts: pa.Array) -> pa.Array:
    """`_field` of each element of a string array."""
    import pyarrow.compute as pc  # imported on first use (see arrays.py)
    lengths = pc.cast(pc.binary_length(texts), pa.string())
    return pc.if_else(pc.is_null(texts), text("n"), pc.binary_join_element_wise(lengths, text(":"), texts, text("")))


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
