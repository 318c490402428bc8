"""The key index against the plainest oracle, a list of (hash, rowid) pairs: whatever is added, in whatever
chunks, merged into the main arrays or not, every hash finds exactly its rows and nothing else."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from prefclean.judge import keyindex
from prefclean.judge.keyindex import KeyIndex

HASHES = st.integers(0, 40).map(lambda h: h * 0x9E3779B97F4A7C15 % 2**64)  # few distinct: repeats and collisions
CHUNKS = st.lists(st.lists(HASHES, max_size=12), max_size=10)


@settings(max_examples=150, deadline=None)
@given(initial=st.lists(HASHES, max_size=20), chunks=CHUNKS, delta_rows=st.sampled_from([1, 5, 65_536]),
       probes=st.lists(HASHES, min_size=1, max_size=15))
def test_every_hash_finds_exactly_its_rows(initial, chunks, delta_rows, probes):
    saved = keyindex.DELTA_ROWS
    keyindex.DELTA_ROWS = delta_rows  # small: merges into the main arrays happen on the way
    try:
        rows = list(zip(initial, range(len(initial))))
        index = KeyIndex(np.array(initial, np.uint64), np.arange(len(initial), dtype=np.int64))
        for chunk in chunks:
            rowids = np.arange(len(rows), len(rows) + len(chunk), dtype=np.int64)
            index.add(np.array(chunk, np.uint64), rowids)
            rows.extend(zip(chunk, rowids.tolist()))
        positions, found = index.candidates(np.array(probes, np.uint64))
        got = sorted(zip(positions.tolist(), found.tolist()))
        want = sorted((i, r) for i, p in enumerate(probes) for h, r in rows if h == p)
        assert got == want
        assert len(index) == len(rows)
    finally:
        keyindex.DELTA_ROWS = saved
