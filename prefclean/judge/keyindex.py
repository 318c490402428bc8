"""Which keys the judgment cache holds, and where: a sorted array of 64-bit key hashes with their rowids.

DuckDB answers a 2,048-key look-up with a hash join that scans every key in the table (55 ms at 100k cached
judgments, 680 ms at 1M); its ART index is used only for a few dozen keys. This index is read once per build from
the cache's `key_hash` and `prompt_hash` columns (a scan of integers, ~0.1 s per million judgments) and then
answers membership in microseconds per batch, whatever the cache's size: a miss costs nothing in DuckDB, a hit
is fetched by its rowid. Rows stored during the build go into a small sorted delta, each store's few merged into
it in place, and the delta into the main arrays when it passes DELTA_ROWS: no look-up sorts anything but its own
probes, so a cold build's look-ups cost the same at 2M stored judgments as at 200k (the delta used to be sorted
again at each look-up after a store, up to a tenth of the index each time). A rowid is only a hint: the cache
checks each fetched row's key, so a row that moved (DuckDB may compact a table at a checkpoint) is found again by
its key.
"""

from __future__ import annotations

import numpy as np

NO_ROWID = -1  # a hash whose row must be fetched by key
DELTA_ROWS = 65_536  # merged into the main arrays past this (a merge moves them all: ~5 ms per million)


class KeyIndex:
    def __init__(self, hashes: np.ndarray, rowids: np.ndarray):
        order = np.argsort(hashes, kind="stable")
        self._hashes, self._rowids = hashes[order], rowids[order]
        self._delta_hashes = np.empty(0, np.uint64)  # sorted, like the main arrays
        self._delta_rowids = np.empty(0, np.int64)
        self.max_rowid = int(rowids.max()) if len(rowids) else -1  # of the table when read (see add)

    def __len__(self) -> int:
        return len(self._hashes) + len(self._delta_hashes)

    def add(self, hashes: np.ndarray, rowids: np.ndarray, max_rowid: int | None = None) -> None:
        """Rows stored since the index was read (NO_ROWID where the rowid is not known); `max_rowid`: the last
        rowid these came from, where `rowids` are not plain rowids."""
        if max_rowid is not None:
            self.max_rowid = max(self.max_rowid, int(max_rowid))
        elif len(rowids):
            self.max_rowid = max(self.max_rowid, int(rowids.max()))
        if not len(hashes):
            return
        self._delta_hashes, self._delta_rowids = _merged(self._delta_hashes, self._delta_rowids,
                                                         hashes.astype(np.uint64), rowids.astype(np.int64))
        if len(self._delta_hashes) > DELTA_ROWS:
            self._hashes, self._rowids = _merged(self._hashes, self._rowids, self._delta_hashes, self._delta_rowids,
                                                 added_sorted=True)
            self._delta_hashes, self._delta_rowids = np.empty(0, np.uint64), np.empty(0, np.int64)

    def candidates(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `hashes`, rowids) of every indexed row with one of these hashes (a hash may have
        several rows: a collision, or a row stored again). The probes are searched in sorted order: a binary
        search over millions of hashes costs a cache miss per step, and sorted probes share their first steps."""
        order = np.argsort(hashes, kind="stable")
        probes = hashes[order]
        positions, rowids = [], []
        for sorted_hashes, sorted_rowids in ((self._hashes, self._rowids), (self._delta_hashes, self._delta_rowids)):
            size = len(sorted_hashes)
            if not size:
                continue
            left = np.searchsorted(sorted_hashes, probes, side="left")
            hit = np.flatnonzero(sorted_hashes[np.minimum(left, size - 1)] == probes)
            if not len(hit):
                continue
            at = left[hit]
            positions.append(order[hit])
            rowids.append(sorted_rowids[at])
            more = at + 1 < size
            while more.any():  # rare: the next entries have the same hash too
                nxt = at + 1
                more &= sorted_hashes[np.minimum(nxt, size - 1)] == probes[hit]
                positions.append(order[hit][more])
                rowids.append(sorted_rowids[nxt[more]])
                at = nxt
                more &= at + 1 < size
        if not positions:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(positions), np.concatenate(rowids)


def _merged(hashes: np.ndarray, rowids: np.ndarray, added: np.ndarray, added_rowids: np.ndarray,
            added_sorted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sorted arrays with `added` put in their places (after equal hashes already there: the older row first),
    in one pass that moves each element once, not a sort of them all."""
    if not added_sorted:
        order = np.argsort(added, kind="stable")
        added, added_rowids = added[order], added_rowids[order]
    at = np.searchsorted(hashes, added, side="right") + np.arange(len(added))  # each added one's place in the result
    size = len(hashes) + len(added)
    keep = np.ones(size, bool)
    keep[at] = False
    out_h, out_r = np.empty(size, np.uint64), np.empty(size, np.int64)
    out_h[at], out_r[at] = added, added_rowids
    out_h[keep], out_r[keep] = hashes, rowids
    return out_h, out_r
