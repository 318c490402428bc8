"""Arrow arrays and scalars from numpy arrays and Python values, without pyarrow's Python-object conversion.

`pa.array()` and `pa.scalar()` import pandas the first time they convert anything from Python (numpy arrays and
one string included): ~0.25 s of import holding the GIL, in the middle of a build's first judge batches (see
jsonrows). Built from buffers instead, they cost nothing to import and no copy of a numpy array. The judge's
modules import `pyarrow.compute` (~0.15 s: it writes a wrapper per kernel) where they first call it, not at the
top, so a build's start-up does not wait for it (an Array's `take` or `cast` imports it at the first batch).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_TYPES = {np.dtype(np.int64): pa.int64(), np.dtype(np.int32): pa.int32()}


def from_numpy(values: np.ndarray) -> pa.Array:
    """A 64- or 32-bit integer array with these values (no NULLs)."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(_TYPES[values.dtype], len(values), [None, pa.py_buffer(values)])


def strings(values: list[str]) -> pa.Array:
    """A string array of these texts (no NULLs)."""
    encoded = [v.encode("utf-8", "surrogatepass") for v in values]
    ends = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=ends[1:])
    data = b"".join(encoded)
    if len(data) < 2**31:
        return pa.StringArray.from_buffers(len(values), pa.py_buffer(ends.astype(np.int32)), pa.py_buffer(data))
    return pa.LargeStringArray.from_buffers(len(values), pa.py_buffer(ends), pa.py_buffer(data))


def text(value: str) -> pa.Scalar:
    """A string scalar, for Arrow's compute functions."""
    return strings([value])[0]


def valid(array: pa.Array) -> np.ndarray:
    """Which elements are not NULL, as a numpy bool array (read from the validity bitmap)."""
    if array.null_count == 0:
        return np.ones(len(array), bool)
    if array.null_count == len(array):
        return np.zeros(len(array), bool)
    bits = np.frombuffer(array.buffers()[0], np.uint8)
    return np.unpackbits(bits, count=array.offset + len(array), bitorder="little")[array.offset:].astype(bool)


def list_offsets(lists: pa.Array) -> np.ndarray:
    """A list array's n + 1 offsets into its values (its slice's)."""
    width = np.dtype(np.int64 if pa.types.is_large_list(lists.type) else np.int32)
    return np.frombuffer(lists.buffers()[1], dtype=width, count=len(lists) + 1,
                         offset=lists.offset * width.itemsize).astype(np.int64)


def string_ends(texts: pa.Array) -> np.ndarray:
    """A string array's n + 1 offsets into its data buffer."""
    width = np.dtype(np.int64 if pa.types.is_large_string(texts.type) else np.int32)
    return np.frombuffer(texts.buffers()[1], dtype=width, count=len(texts) + 1,
                         offset=texts.offset * width.itemsize).astype(np.int64)
