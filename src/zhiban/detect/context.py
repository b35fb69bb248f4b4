"""Contextual novelty: learn which short contexts of quantized values follow which, score the unforeseen.

After the idea of the Contextual Anomaly Detector (CAD OSE, M. Smirnov, 2016), written anew:
- each value becomes a few binary "facts" (the bits of its bin on a range learned while warming up);
- a context pairs a left set of facts (the previous row's facts and the contexts then active) with a
  right set (the facts that followed); contexts are stored once and counted every time their left
  side is fully present;
- a row is novel when its facts were not predicted; its novelty is how few of the contexts whose
  left side matched were confirmed, plus how many contexts had to be learned anew.
Memory is bounded by `max_contexts`: once full, existing contexts keep learning but no new ones are
stored (a series that never repeats itself then simply stays novel).
"""

from __future__ import annotations

SENSOR_FACT = 1 << 16  # sensor facts are SENSOR_FACT + 2*bit + value
NEGATIVE_FACT = SENSOR_FACT - 1  # the value fell below the learned range
NEURON_FACT = 1 << 31  # an active context becomes fact NEURON_FACT + its id


class _LeftSide:
    """A set of facts seen as the left side of one or more contexts."""

    __slots__ = ("contexts", "facts", "seen", "size")

    def __init__(self, facts: tuple[int, ...]) -> None:
        self.facts = facts
        self.size = len(facts)
        self.contexts: dict[int, int] = {}  # right side id -> context id
        self.seen: list[int] = []  # facts of it present at the last crossing


class _RightSide:
    """A set of facts seen as the right side of one or more contexts."""

    __slots__ = ("facts", "id", "seen", "size")

    def __init__(self, side_id: int, facts: tuple[int, ...]) -> None:
        self.id = side_id
        self.facts = facts
        self.size = len(facts)
        self.seen: list[int] = []


class _Context:
    """Counts of one (left, right) pair: facts expected, facts confirmed, full confirmations."""

    __slots__ = ("activations", "confirmed", "expected", "id", "left_id", "right_facts", "right_id", "zero_level")

    def __init__(
        self, context_id: int, right_facts: tuple[int, ...], zero_level: bool, left_id: int, right_id: int
    ) -> None:
        self.id = context_id
        self.expected = 0
        self.confirmed = 0
        self.activations = 0
        self.right_facts = right_facts
        self.zero_level = zero_level
        self.left_id = left_id
        self.right_id = right_id


class ContextMemory:
    """The dictionary of learned contexts, indexed by fact for the crossing of each row."""

    def __init__(self, max_left_facts: int, max_contexts: int) -> None:
        self.max_left_facts = max_left_facts
        self.max_contexts = max_contexts
        self.left_ids: dict[tuple[int, ...], int] = {}
        self.lefts: list[_LeftSide] = []
        self.right_ids: dict[tuple[int, ...], int] = {}
        self.rights: list[_RightSide] = []
        self.left_index: dict[int, list[_LeftSide]] = {}
        self.right_index: dict[int, list[_RightSide]] = {}
        self.contexts: list[_Context] = []
        self.crossed_lefts: list[_LeftSide] = []  # left sides touched by the previous left crossing
        self.full_lefts: list[_LeftSide] = []  # those of them fully present
        self.just_created = -1

    def _left(self, facts: tuple[int, ...]) -> int:
        side_id = self.left_ids.get(facts)
        if side_id is None:
            side_id = self.left_ids[facts] = len(self.lefts)
            side = _LeftSide(facts)
            self.lefts.append(side)
            for f in facts:
                self.left_index.setdefault(f, []).append(side)
        return side_id

    def _right(self, facts: tuple[int, ...]) -> int:
        side_id = self.right_ids.get(facts)
        if side_id is None:
            side_id = self.right_ids[facts] = len(self.rights)
            side = _RightSide(side_id, facts)
            self.rights.append(side)
            for f in facts:
                self.right_index.setdefault(f, []).append(side)
        return side_id

    def add(self, left: tuple[int, ...], right: tuple[int, ...], zero_level: bool) -> bool:
        """Store a context unless known (or memory is full); True if it was new."""
        left_id = self.left_ids.get(left)
        right_id = self.right_ids.get(right)
        if left_id is not None and right_id is not None:
            known = self.lefts[left_id].contexts.get(right_id)
            if known is not None:
                if zero_level:
                    self.contexts[known].zero_level = True
                return False
        if len(self.contexts) >= self.max_contexts:
            return False
        left_id, right_id = self._left(left), self._right(right)
        context_id = len(self.contexts)
        self.lefts[left_id].contexts[right_id] = context_id
        self.contexts.append(_Context(context_id, right, zero_level, left_id, right_id))
        if zero_level:
            self.just_created = context_id
        return True

    def cross_right(self, facts: tuple[int, ...], learn_new: bool) -> tuple[list[_Context], int, list[tuple]]:
        """Confirm the contexts whose left side was fully present at the previous row.

        Returns the fully confirmed (active) contexts, how many contexts were tried, and the
        partial overlaps of zero-level contexts that may become new, more general contexts.
        """
        rights = self.rights
        for side in rights:
            side.seen = []
        for f in facts:
            for side in self.right_index.get(f, ()):
                side.seen.append(f)
        active: list[_Context] = []
        tried = 0
        candidates: list[tuple] = []
        max_left = self.max_left_facts
        # Partial left matches only matter when new contexts may be learned: skip them otherwise.
        for left in self.crossed_lefts if learn_new else self.full_lefts:
            full_left = len(left.seen) == left.size
            for right_id, context_id in left.contexts.items():
                if context_id == self.just_created:
                    continue
                ctx = self.contexts[context_id]
                right = rights[right_id]
                n_seen = len(right.seen)
                if full_left:
                    tried += 1
                    ctx.expected += right.size
                    if n_seen:
                        ctx.confirmed += n_seen
                        if n_seen == right.size:
                            ctx.activations += 1
                            active.append(ctx)
                        elif ctx.zero_level and learn_new and len(left.seen) <= max_left:
                            candidates.append((tuple(left.seen), tuple(right.seen)))
                elif ctx.zero_level and learn_new and n_seen and len(left.seen) <= max_left:
                    candidates.append((tuple(left.seen), tuple(right.seen)))
        self.just_created = -1
        return active, tried, candidates

    def cross_left(self, facts: tuple[int, ...], candidates: list[tuple]) -> tuple[int, set[int]]:
        """Learn the candidate contexts, then predict the next row's facts from this left group."""
        added = sum(1 for left, right in candidates if self.add(left, right, zero_level=False))
        for side in self.crossed_lefts:
            side.seen = []
        touched: dict[int, _LeftSide] = {}
        for f in facts:
            for side in self.left_index.get(f, ()):
                if not side.seen:
                    touched[id(side)] = side
                side.seen.append(f)
        self.crossed_lefts = list(touched.values())
        self.full_lefts = [side for side in self.crossed_lefts if len(side.seen) == side.size]
        best = 0.0
        predicting: list[_Context] = []
        for side in self.full_lefts:
            for context_id in side.contexts.values():
                ctx = self.contexts[context_id]
                weight = ctx.confirmed / ctx.expected if ctx.expected else 0.0
                if weight > best:
                    best, predicting = weight, [ctx]
                elif weight == best:
                    predicting.append(ctx)
        predicted: set[int] = set()
        for ctx in predicting:
            predicted.update(ctx.right_facts)
        return added, predicted


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

    def facts_of(self, value: float) -> tuple[int, ...]:
        """The sensor facts of a value: one per bit of its bin (more bits beyond the range)."""
        position = (value - self.low) / self.bin_width
        facts = []
        if position < 0:
            facts.append(NEGATIVE_FACT)
        number = min(int(abs(position)), 1 << 40)  # bounded: a wild value is just a high bin
        width = max(self.bits, number.bit_length())
        for bit in range(width):
            facts.append(SENSOR_FACT + 2 * bit + ((number >> bit) & 1))
        return tuple(sorted(facts))

    def update(self, value: float) -> float:
        """Learn one value; return its novelty (0 when all its facts were predicted)."""
        facts = self.facts_of(value)
        memory = self.memory
        unforeseen = any(f not in self.predicted for f in facts)
        new_zero = False
        candidates: set[tuple] = set()
        if self.left_group:
            zero = (self.left_group, facts)
            candidates.add(zero)
            new_zero = memory.add(self.left_group, facts, zero_level=True)
        active, tried, partials = memory.cross_right(facts, new_zero)
        candidates.update(partials)
        confirmed_share = len(active) / tried if tried else 0.0
        active.sort(key=lambda c: (c.activations, c.left_id, c.right_id))
        neurons = {NEURON_FACT + c.id for c in active[-self.max_active :]}
        self.left_group = tuple(sorted(set(facts) | neurons))
        added, self.predicted = memory.cross_left(self.left_group, partials)
        added += 1 if new_zero else 0
        new_share = added / len(candidates) if new_zero and candidates else 0.0
        if not unforeseen:
            return 0.0
        return (1.0 - confirmed_share + new_share) / 2.0
