"""Contextual novelty: learn which short contexts of quantized values follow which, score the unforeseen.

After the idea of the Contextual Anomaly Detector (CAD OSE, M. Smirnov, 2016), written anew:
- each value becomes a few binary "facts" (the bits of its bin);
- a context pairs a left set of facts (the previous row's facts and the contexts then active) with a
  right set (the facts that followed); contexts are stored once and counted every time their left
  side is fully present;
- a row is novel when its facts were not predicted; its novelty is how few of the contexts whose
  left side matched were confirmed, plus how many contexts had to be learned anew.
Memory is bounded by `max_contexts`: once full, existing contexts keep learning but no new ones are
stored (a series that never repeats itself then simply stays novel).

Speed: an inverted index (fact -> ids of the sides holding it) gives, with one `bincount`, how many
facts of every side are present; the per-context counters are numpy arrays updated in one pass.
So a row costs a few vector operations over the stored contexts instead of a Python loop.
"""

from __future__ import annotations

import numpy as np

SENSOR_FACT = 1 << 16  # sensor facts are SENSOR_FACT + 2*bit + value
NEGATIVE_FACT = SENSOR_FACT - 1  # the value fell below the learned range
NEURON_FACT = 1 << 31  # an active context becomes fact NEURON_FACT + its id
INITIAL_CAPACITY = 256
MAX_CACHED_BINS = 4096


class _Ids:
    """A growable int64 array (amortized O(1) append, a view for numpy work)."""

    __slots__ = ("data", "size")

    def __init__(self, capacity: int = 16) -> None:
        self.data = np.empty(capacity, dtype=np.int64)
        self.size = 0

    def append(self, value: int) -> None:
        if self.size == self.data.size:
            self.data = np.concatenate([self.data, np.empty(self.data.size, dtype=np.int64)])
        self.data[self.size] = value
        self.size += 1


class _Sides:
    """Distinct fact sets (left or right sides of contexts) with a fact -> side ids index."""

    def __init__(self) -> None:
        self.ids: dict[tuple[int, ...], int] = {}
        self.facts: list[tuple[int, ...]] = []
        self.index: dict[int, _Ids] = {}

    def __len__(self) -> int:
        return len(self.facts)

    def get(self, facts: tuple[int, ...]) -> int:
        """The id of a side, stored on first sight."""
        side_id = self.ids.get(facts)
        if side_id is None:
            side_id = self.ids[facts] = len(self.facts)
            self.facts.append(facts)
            for f in facts:
                ids = self.index.get(f)
                if ids is None:
                    ids = self.index[f] = _Ids()
                ids.append(side_id)
        return side_id

    def present(self, facts: tuple[int, ...] | set[int]) -> np.ndarray:
        """How many facts of every stored side are among `facts`."""
        index = self.index
        parts = [ids.data[: ids.size] for f in facts if (ids := index.get(f)) is not None]
        if not parts:
            return np.zeros(len(self.facts), dtype=np.int64)
        return np.bincount(np.concatenate(parts), minlength=len(self.facts))


class ContextMemory:
    """The dictionary of learned contexts and their counters, crossed with each row's facts."""

    def __init__(self, max_left_facts: int, max_contexts: int) -> None:
        self.max_left_facts = max_left_facts
        self.max_contexts = max_contexts
        self.lefts = _Sides()
        self.rights = _Sides()
        self.pairs: dict[tuple[int, int], int] = {}  # (left id, right id) -> context id
        capacity = min(max_contexts, INITIAL_CAPACITY)
        self.left_of = np.zeros(capacity, dtype=np.int64)
        self.right_of = np.zeros(capacity, dtype=np.int64)
        self.expected = np.zeros(capacity, dtype=np.int64)  # facts predicted when the left side was present
        self.confirmed = np.zeros(capacity, dtype=np.int64)  # of them, facts that then came
        self.activations = np.zeros(capacity, dtype=np.int64)  # times the whole right side came
        self.zero_level = np.zeros(capacity, dtype=bool)  # learned from a whole left group
        self.left_size = np.zeros(capacity, dtype=np.int64)
        self.right_size = np.zeros(capacity, dtype=np.int64)
        self.count = 0
        # Per context, from the last left crossing: facts of its left side present, and all of them?
        self.left_seen: np.ndarray = np.zeros(0, dtype=np.int64)
        self.full_left: np.ndarray = np.zeros(0, dtype=bool)
        self.left_group: frozenset[int] = frozenset()
        self.just_created = -1

    def __len__(self) -> int:
        return self.count

    def _grow(self) -> None:
        capacity = min(self.max_contexts, 2 * self.left_of.size)
        for name in (
            "left_of",
            "right_of",
            "expected",
            "confirmed",
            "activations",
            "zero_level",
            "left_size",
            "right_size",
        ):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: old.size] = old
            setattr(self, name, new)

    def add(self, left: tuple[int, ...], right: tuple[int, ...], zero_level: bool) -> bool:
        """Store a context unless known (or memory is full); True if it was new."""
        left_id = self.lefts.ids.get(left)
        right_id = self.rights.ids.get(right)
        if left_id is not None and right_id is not None:
            known = self.pairs.get((left_id, right_id))
            if known is not None:
                if zero_level:
                    self.zero_level[known] = True
                return False
        if self.count >= self.max_contexts:
            return False
        left_id, right_id = self.lefts.get(left), self.rights.get(right)
        if self.count == self.left_of.size:
            self._grow()
        context_id = self.count
        self.count += 1
        self.pairs[(left_id, right_id)] = context_id
        self.left_of[context_id] = left_id
        self.right_of[context_id] = right_id
        self.zero_level[context_id] = zero_level
        self.left_size[context_id] = len(left)
        self.right_size[context_id] = len(right)
        if zero_level:
            self.just_created = context_id
        return True

    def cross_right(
        self, facts: tuple[int, ...], learn_new: bool
    ) -> tuple[np.ndarray, int, list[tuple[tuple[int, ...], tuple[int, ...]]]]:
        """Confirm the contexts whose left side was fully present at the previous row.

        Returns the ids of the fully confirmed (active) contexts, how many contexts were tried, and
        the partial overlaps of zero-level contexts that may become new, more general contexts.
        """
        # Contexts stored since the last left crossing (the zero-level one of this row) were not
        # crossed: they are not tried.
        n = self.left_seen.size
        self.just_created = -1
        if n == 0:
            return np.zeros(0, dtype=np.int64), 0, []
        left_seen, full_left = self.left_seen, self.full_left
        right_seen = self.rights.present(facts)[self.right_of[:n]]
        right_size = self.right_size[:n]
        tried = full_left.nonzero()[0]
        self.expected[tried] += right_size[tried]
        self.confirmed[tried] += right_seen[tried]
        full_right = right_seen == right_size
        active = tried[full_right[tried]]
        self.activations[active] += 1
        candidates: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        if learn_new:
            partial = (
                self.zero_level[:n]
                & (left_seen > 0)
                & (left_seen <= self.max_left_facts)
                & (right_seen > 0)
                & ~(full_left & full_right)
            )
            group, now = self.left_group, set(facts)
            left_facts, right_facts = self.lefts.facts, self.rights.facts
            # Many candidates share a side: intersect each side once.
            lefts: dict[int, tuple[int, ...]] = {}
            rights: dict[int, tuple[int, ...]] = {}
            chosen = partial.nonzero()[0]
            for left_id, right_id in zip(self.left_of[chosen].tolist(), self.right_of[chosen].tolist(), strict=True):
                left = lefts.get(left_id)
                if left is None:
                    left = lefts[left_id] = tuple(f for f in left_facts[left_id] if f in group)
                right = rights.get(right_id)
                if right is None:
                    right = rights[right_id] = tuple(f for f in right_facts[right_id] if f in now)
                candidates.append((left, right))
        return active, int(tried.size), list(dict.fromkeys(candidates))

    def cross_left(
        self, facts: tuple[int, ...], candidates: list[tuple[tuple[int, ...], tuple[int, ...]]]
    ) -> tuple[int, set[int]]:
        """Learn the candidate contexts, then predict the next row's facts from this left group."""
        added = sum(1 for left, right in candidates if self.add(left, right, zero_level=False))
        self.left_group = frozenset(facts)
        n = self.count
        self.left_seen = self.lefts.present(facts)[self.left_of[:n]]
        self.full_left = self.left_seen == self.left_size[:n]
        full = self.full_left.nonzero()[0]
        if full.size == 0:
            return added, set()
        expected = self.expected[full]
        weight = np.divide(self.confirmed[full], expected, out=np.zeros(full.size), where=expected > 0)
        best = full[weight == weight.max()]
        predicted: set[int] = set()
        right_facts = self.rights.facts
        for right_id in set(self.right_of[best].tolist()):
            predicted.update(right_facts[right_id])
        return added, predicted


def _facts_of_bin(bits: int, negative: bool, number: int) -> tuple[int, ...]:
    facts = [NEGATIVE_FACT] if negative else []
    for bit in range(max(bits, number.bit_length())):
        facts.append(SENSOR_FACT + 2 * bit + ((number >> bit) & 1))
    return tuple(sorted(facts))


class ContextNovelty:
    """Raw novelty in [0, 1] of each value given the contexts learned so far."""

    def __init__(
        self,
        low: float,
        high: float,
        *,
        bits: int = 3,
        max_left_facts: int = 7,
        max_active: int = 15,
        max_contexts: int = 200_000,
    ) -> None:
        self.bits = bits
        top_bin = float(2**bits - 1)
        span = high - low
        self.low = low
        self.bin_width = (span if span > 0 else top_bin) / top_bin
        self.max_active = max_active
        self.memory = ContextMemory(max_left_facts, max_contexts)
        self.left_group: tuple[int, ...] = ()
        self.predicted: set[int] = set()
        self.bin_facts: dict[tuple[bool, int], tuple[int, ...]] = {}  # bounded: see facts_of

    def facts_of(self, value: float) -> tuple[int, ...]:
        """The sensor facts of a value: one per bit of its bin (more bits beyond the range)."""
        position = (value - self.low) / self.bin_width
        number = min(int(abs(position)), 1 << 40)  # bounded: a wild value is just a high bin
        key = (position < 0, number)
        facts = self.bin_facts.get(key)
        if facts is None:
            facts = _facts_of_bin(self.bits, *key)
            if len(self.bin_facts) < MAX_CACHED_BINS:
                self.bin_facts[key] = facts
        return facts

    def update(self, value: float) -> float:
        """Learn one value; return its novelty (0 when all its facts were predicted)."""
        return self.update_facts(self.facts_of(value))

    def update_facts(self, facts: tuple[int, ...]) -> float:
        """Learn one row given as sensor facts; return its novelty."""
        memory = self.memory
        unforeseen = any(f not in self.predicted for f in facts)
        new_zero = False
        candidates: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
        if self.left_group:
            candidates.add((self.left_group, facts))
            new_zero = memory.add(self.left_group, facts, zero_level=True)
        active, tried, partials = memory.cross_right(facts, new_zero)
        candidates.update(partials)
        confirmed_share = active.size / tried if tried else 0.0
        if active.size > self.max_active:
            # The most often confirmed contexts carry over (ties: the older left, then right side).
            order = np.lexsort((memory.right_of[active], memory.left_of[active], memory.activations[active]))
            active = active[order[-self.max_active :]]
        neurons = {NEURON_FACT + c for c in active.tolist()}
        self.left_group = tuple(sorted(set(facts) | neurons))
        added, self.predicted = memory.cross_left(self.left_group, partials)
        added += 1 if new_zero else 0
        new_share = added / len(candidates) if new_zero and candidates else 0.0
        if not unforeseen:
            return 0.0
        return (1.0 - confirmed_share + new_share) / 2.0
