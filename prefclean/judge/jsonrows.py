"""Python rows to Arrow through pyarrow's JSON reader, for the judge's results and the judgment cache.

`pa.array()` and `Table.from_pylist()` import pandas the first time they convert Python objects: ~0.25 s of
import that holds the GIL, which in a build landed in the middle of the first judge requests (whose answers
waited for it), and the only reason a build imported pandas at all. pyarrow's JSON reader builds the same
columns in C++ without it, at about the same cost (2,000 judgments: ~12 ms to encode, ~11 ms to read,
against ~30 ms for `pa.array`).
"""

from __future__ import annotations

import json
from array import array

import orjson
import pyarrow as pa
import pyarrow.json as pa_json


def json_line(value) -> bytes:
    """One value as a JSON line. Text a judge sent with invalid UTF-8 (a lone surrogate) gets '?' there.
    orjson first: ~0.4 µs instead of ~5.5 µs for a judgment's row, and a judgment makes three (its result,
    its cache row, its call); what it refuses (a surrogate, an integer past 64 bits) takes the json module."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "replace")


def table_from_json_lines(lines: list[bytes], schema: pa.Schema) -> pa.Table:
    """A table of exactly this schema, one row per line (a JSON object; missing keys are null)."""
    if not lines:
        return schema.empty_table()
    data = b"\n".join(lines)
    return pa_json.read_json(
        pa.BufferReader(data),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1),  # one block: any row size
        parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"))


def array_from_json_lines(lines: list[bytes], type: pa.DataType) -> pa.Array:
    """An array of this type, one element per line (a JSON value; null for a missing one)."""
    table = table_from_json_lines([b'{"v":' + line + b"}" for line in lines], pa.schema([("v", type)]))
    return table.column(0).combine_chunks()


class ArrowRows:
    """Values of one type collected as JSON lines and converted to Arrow a group at a time, as they arrive
    (one large conversion at the end of a judge batch took 12-45 ms after the last answer), then returned
    in any order, repeats allowed, with `take`."""

    def __init__(self, type: pa.DataType):
        self.type = type
        self._chunks: list[pa.Array] = []
        self._pending: list[bytes] = []
        self._count = 0

    def add(self, value) -> int:
        """Collect one value; returns its position for `take`."""
        self._pending.append(json_line(value))
        self._count += 1
        return self._count - 1

    def add_array(self, values: pa.Array) -> int:
        """Collect values already in Arrow (of this type); returns the position of the first."""
        self.convert()
        self._chunks.append(values)
        self._count += len(values)
        return self._count - len(values)

    def convert(self) -> None:
        """Convert what was added since the last call."""
        if self._pending:
            self._chunks.append(array_from_json_lines(self._pending, self.type))
            self._pending = []

    def take(self, positions: list[int]) -> pa.Array:
        """The values at these positions, in this order."""
        self.convert()
        values = pa.concat_arrays(self._chunks) if self._chunks else array_from_json_lines([], self.type)
        # An index array from a buffer: pa.array(positions) would import pandas.
        indices = pa.Array.from_buffers(pa.int64(), len(positions), [None, pa.py_buffer(array("q", positions))])
        return values.take(indices)
