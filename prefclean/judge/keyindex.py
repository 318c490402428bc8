"""Which keys the judgment cache holds, and where: a sorted array of 64-bit key hashes with their rowids.

DuckDB answers a 2,048-key look-up with a hash join that scans every key in the table (55 ms at 100k cached
judgments, 680 ms at 1M); its ART index is used only for a few dozen keys. This index is read once per build from
the cache's `key_hash` and `prompt_hash` columns (a scan of integers, ~0.1 s per million judgments) and then
answers membership in microseconds per batch, whatever the cache's size: a miss costs nothing in DuckDB, a hit
is fetched by its rowid. Rows stored during the build go into a small delta, sorted on demand and merged into the
main arrays when it grows past a tenth of them. A rowid is only a hint: the cache checks each fetched row's key,
so a row that moved (DuckDB may compact a table at a checkpoint) is found again by its key.
"""

from __future__ import annotations

import numpy as np

NO_ROWID = -1  # a hash whose row must be fetched by key


class KeyIndex:
    def __init__(self, hashes: np.ndarray, rowids: np.ndarray):
        order = np.argsort(hashes, kind="stable")
        self._hashes, self._rowids = hashes[order], rowids[order]
        self._delta_hashes: list[np.ndarray] = []
        self._delta_rowids: list[np.ndarray] = []
        self._delta: tuple[np.ndarray, np.ndarray] | None = None  # sorted, when asked since the last add
        self.max_rowid = int(rowids.max()) if len(rowids) else -1  # of the table when read (see add)

    def __len__(self) -> int:
        return len(self._hashes) + sum(len(h) for h in self._delta_hashes)

    def add(self, hashes: np.ndarray, rowids: np.ndarray, max_rowid: int | None = None) -> None:
        """Rows stored since the index was read (NO_ROWID where the rowid is not known); `max_rowid`: the last
        rowid these came from, where `rowids` are not plain rowids."""
        if max_rowid is not None:
            self.max_rowid = max(self.max_rowid, int(max_rowid))
        elif len(rowids):
            self.max_rowid = max(self.max_rowid, int(rowids.max()))
        if not len(hashes):
            return
        self._delta_hashes.append(hashes.astype(np.uint64))
        self._delta_rowids.append(rowids.astype(np.int64))
        self._delta = None
        if sum(len(h) for h in self._delta_hashes) > max(65_536, len(self._hashes) // 10):
            self._merge()

    def candidates(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `hashes`, rowids) of every indexed row with one of these hashes (a hash may have
        several rows: a collision, or a row stored again). The probes are searched in sorted order: a binary
        search over millions of hashes costs a cache miss per step, and sorted probes share their first steps."""
        order = np.argsort(hashes, kind="stable")
        probes = hashes[order]
        positions, rowids = [], []
        for sorted_hashes, sorted_rowids in (self._main(), self._sorted_delta()):
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

    def _main(self) -> tuple[np.ndarray, np.ndarray]:
        return self._hashes, self._rowids

    def _sorted_delta(self) -> tuple[np.ndarray, np.ndarray]:
        if self._delta is None:
            if not self._delta_hashes:
                self._delta = (np.empty(0, np.uint64), np.empty(0, np.int64))
            else:
                hashes, rowids = np.concatenate(self._delta_hashes), np.concatenate(self._delta_rowids)
                order = np.argsort(hashes, kind="stable")
                self._delta = (hashes[order], rowids[order])
                self._delta_hashes, self._delta_rowids = [self._delta[0]], [self._delta[1]]
        return self._delta

    def _merge(self) -> None:
        hashes, rowids = self._sorted_delta()
        both_h, both_r = np.concatenate([self._hashes, hashes]), np.concatenate([self._rowids, rowids])
        order = np.argsort(both_h, kind="stable")  # radix sort of two sorted runs: linear
        self._hashes, self._rowids = both_h[order], both_r[order]
        self._delta_hashes, self._delta_rowids, self._delta = [], [], None
