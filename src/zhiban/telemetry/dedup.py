"""A batch sent twice is counted once: (app_id, session_id, ts) seen within a bounded horizon."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from zhiban.core.errors import InvalidInput
from zhiban.telemetry.batch import ReportBatch
from zhiban.telemetry.hashing import combine

_MERGE_AFTER: Final = 8  # sorted runs per bucket before they are merged into one


@dataclass(eq=False)
class _Bucket:
    """Hashes seen in one slice of event time, as a few sorted runs (cheap to add to, vectorized to probe)."""

    runs: list[NDArray[np.uint64]] = field(default_factory=list)
    size: int = 0

    def contains(self, keys: NDArray[np.uint64]) -> NDArray[np.bool_]:
        found = np.zeros(len(keys), dtype=bool)
        for run in self.runs:
            at = np.searchsorted(run, keys)
            found |= run[np.minimum(at, len(run) - 1)] == keys
        return found

    def add(self, keys: NDArray[np.uint64]) -> None:
        if len(keys) == 0:
            return
        self.runs.append(np.sort(keys))
        self.size += len(keys)
        if len(self.runs) > _MERGE_AFTER:
            self.runs = [np.sort(np.concatenate(self.runs))]


class Deduplicator:
    """Remembers report identities for `horizon_seconds` of event time and at most `max_entries` of them.

    Identities are 64-bit hashes (a false duplicate needs a hash collision: ~n²/2⁶⁴). Reports older than
    the horizon cannot be checked and pass through (counted in `expired`); the aggregator's lateness
    bound, which must not exceed the horizon, drops them anyway.
    """

    def __init__(self, *, horizon_seconds: int = 600, bucket_seconds: int = 60, max_entries: int = 5_000_000) -> None:
        if horizon_seconds <= 0 or bucket_seconds <= 0 or max_entries <= 0:
            raise InvalidInput("dedup horizon, bucket and size must be positive")
        self.horizon_ms = horizon_seconds * 1000
        self.bucket_ms = bucket_seconds * 1000
        self.max_entries = max_entries
        self._buckets: dict[int, _Bucket] = {}
        self._newest_ts = -(2**62)
        self.duplicates = 0
        self.expired = 0

    @property
    def entries(self) -> int:
        """Identities currently remembered."""
        return sum(b.size for b in self._buckets.values())

    def fresh(self, batch: ReportBatch, *, remember: bool = True) -> NDArray[np.bool_]:
        """True for reports not seen before (and remember them); duplicates within the batch count too.

        With remember=False it only looks: nothing is stored or counted (an ingest edge checks first and
        remembers only once the batch is safely handed on, so a failed hand-off can be retried).
        """
        n = len(batch)
        keep = np.ones(n, dtype=bool)
        if n == 0:
            return keep
        ts = batch.ts_ms
        identity = combine(batch.session_keys(), ts.astype(np.uint64))
        newest = max(self._newest_ts, int(ts.max()))
        if remember:
            self._newest_ts = newest
        horizon = newest - self.horizon_ms
        bucket_of = ts - ts % self.bucket_ms
        expired = ts < horizon
        if remember:
            self.expired += int(expired.sum())
        # Repeats inside the batch: only the first sighting is fresh.
        _, first_index = np.unique(identity, return_index=True)
        first_sighting = np.zeros(n, dtype=bool)
        first_sighting[first_index] = True
        keep &= first_sighting | expired
        for start in np.unique(bucket_of[~expired]).tolist():
            rows = np.flatnonzero((bucket_of == start) & ~expired)
            bucket = self._buckets.get(start) if not remember else self._buckets.setdefault(start, _Bucket())
            if bucket is None:
                continue
            seen = bucket.contains(identity[rows])
            keep[rows[seen]] = False
            if remember:
                bucket.add(identity[rows[~seen & first_sighting[rows]]])
        if not remember:
            return keep
        self.duplicates += int(n - keep.sum())
        self._evict(horizon)
        return keep

    def _evict(self, horizon: int) -> None:
        for start in [s for s in self._buckets if s + self.bucket_ms <= horizon]:
            del self._buckets[start]
        total = self.entries
        for start in sorted(self._buckets)[:-1]:  # the newest bucket stays
            if total <= self.max_entries:
                break
            total -= self._buckets.pop(start).size
