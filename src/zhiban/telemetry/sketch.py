"""Mergeable summaries: quantile sketches (DDSketch's logarithmic bins, held in numpy) and session counters.

The `ddsketch` package adds one value at a time in Python (about a microsecond each); a report touches
~9 keys × 6 percentile metrics, so the aggregator bins whole columns with the same logarithmic mapping
in numpy and `QuantileSketch.to_ddsketch()` hands a real DDSketch to whoever needs one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np
from ddsketch import DDSketch
from numpy.typing import NDArray

from zhiban.telemetry.hashing import U64

RELATIVE_ACCURACY: Final = 0.01
_GAMMA_MANTISSA: Final = 2 * RELATIVE_ACCURACY / (1 - RELATIVE_ACCURACY)
GAMMA: Final = 1 + _GAMMA_MANTISSA
_INV_LN_GAMMA: Final = 1 / math.log1p(_GAMMA_MANTISSA)
# Covered range: 0.001 .. 10,000,000 (ms, %, kbps); beyond it values land in the edge bins.
MIN_INDEXED: Final = 1e-3
KEY_MIN: Final = math.ceil(math.log(MIN_INDEXED) * _INV_LN_GAMMA)
KEY_MAX: Final = math.ceil(math.log(1e7) * _INV_LN_GAMMA)
# Slot 0 counts zeros; slot 1 + (key - KEY_MIN) counts a logarithmic bin.
SLOTS: Final = KEY_MAX - KEY_MIN + 2
_SHORT: Final = 48  # sketches of at most this many bins are read without numpy


def value_slots(values: NDArray[np.float64]) -> NDArray[np.int64]:
    """Slot of each value in a dense sketch row: -1 for NaN (not measured), 0 for zero."""
    slots = np.full(values.shape, -1, dtype=np.int64)
    measured = ~np.isnan(values)
    positive = measured & (values > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        keys = np.ceil(np.log(np.where(positive, values, 1.0)) * _INV_LN_GAMMA)
    slots[positive] = np.clip(keys[positive], KEY_MIN, KEY_MAX).astype(np.int64) - KEY_MIN + 1
    slots[measured & ~positive] = 0
    return slots


def key_value(key: int) -> float:
    """The value a bin stands for (same as DDSketch's LogarithmicMapping.value)."""
    return float(GAMMA**key * (2.0 / (1 + GAMMA)))


@dataclass(frozen=True, slots=True)
class QuantileSketch:
    """A DDSketch-compatible quantile sketch: counts[i] values fell in bin key `min_key + i`."""

    min_key: int
    counts: NDArray[np.int64]
    zero_count: int = 0

    @property
    def count(self) -> int:
        """Number of values summarized."""
        return int(self.counts.sum()) + self.zero_count

    @classmethod
    def empty(cls) -> QuantileSketch:
        """A sketch of nothing."""
        return cls(0, np.zeros(0, np.int64), 0)

    @classmethod
    def from_slots(cls, slot_counts: NDArray[np.integer]) -> QuantileSketch:
        """From a dense row of SLOTS counts (slot 0 = zeros), trimmed to its non-empty range."""
        bins = slot_counts[1:]
        nonzero = np.flatnonzero(bins)
        if len(nonzero) == 0:
            return cls(0, np.zeros(0, np.int64), int(slot_counts[0]))
        lo, hi = int(nonzero[0]), int(nonzero[-1])
        return cls(KEY_MIN + lo, bins[lo : hi + 1].astype(np.int64), int(slot_counts[0]))

    @classmethod
    def from_values(cls, values: Iterable[float]) -> QuantileSketch:
        """Sketch of some values (NaN ignored)."""
        slots = value_slots(np.fromiter(values, dtype=np.float64))
        return cls.from_slots(np.bincount(slots[slots >= 0], minlength=SLOTS))

    def quantile(self, q: float) -> float | None:
        """The value at quantile q (0..1), within 1 % relative error; None when empty."""
        short = len(self.counts) <= _SHORT  # a quiet window's few bins: Python beats numpy's call overhead
        counts = self.counts.tolist() if short else self.counts
        total = (sum(counts) if short else int(counts.sum())) + self.zero_count
        if total == 0 or not 0 <= q <= 1:
            return None
        rank = q * (total - 1)
        if rank < self.zero_count:
            return 0.0
        target = rank - self.zero_count
        if short:
            index, running = len(counts), 0
            for at, count in enumerate(counts):
                running += count
                if running > target:
                    index = at
                    break
        else:
            index = int(np.searchsorted(np.cumsum(counts), target, side="right"))
        return key_value(self.min_key + min(index, len(self.counts) - 1))

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """A sketch of both inputs' values."""
        if len(other.counts) == 0:
            return QuantileSketch(self.min_key, self.counts, self.zero_count + other.zero_count)
        if len(self.counts) == 0:
            return QuantileSketch(other.min_key, other.counts, self.zero_count + other.zero_count)
        lo = min(self.min_key, other.min_key)
        hi = max(self.min_key + len(self.counts), other.min_key + len(other.counts))
        counts = np.zeros(hi - lo, np.int64)
        counts[self.min_key - lo : self.min_key - lo + len(self.counts)] += self.counts
        counts[other.min_key - lo : other.min_key - lo + len(other.counts)] += other.counts
        return QuantileSketch(lo, counts, self.zero_count + other.zero_count)

    def to_ddsketch(self) -> DDSketch:
        """The same summary as a `ddsketch.DDSketch` (sum/min/max are those of the bin values)."""
        sketch = DDSketch(RELATIVE_ACCURACY)
        if self.zero_count:
            sketch.add(0.0, self.zero_count)
        for i in np.flatnonzero(self.counts).tolist():
            sketch.add(key_value(self.min_key + i), float(self.counts[i]))
        return sketch


# Session counting: HyperLogLog registers, mergeable by element-wise max, bounded at 2**P bytes a key.
HLL_PRECISION: Final = 12
HLL_REGISTERS: Final = 1 << HLL_PRECISION
_LOW_BITS: Final = 52  # the bits after the register index that feed the rank, exact in a float64


def hll_positions(hashes: U64) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """Register index and rank (leading zeros + 1) of each 64-bit hash."""
    index = (hashes >> np.uint64(64 - HLL_PRECISION)).astype(np.int64)
    low = (hashes & np.uint64((1 << _LOW_BITS) - 1)).astype(np.float64)
    _, bit_length = np.frexp(low)
    rank = (_LOW_BITS + 1 - bit_length).astype(np.uint8)
    return index, rank


def hll_estimate(registers: NDArray[np.uint8]) -> float:
    """Distinct-count estimate from registers (linear counting while sparse, so small counts are ~exact)."""
    return hll_estimates(registers.reshape(1, -1))[0]


def hll_estimates(registers: NDArray[np.uint8], nonzero: NDArray[np.int64] | None = None) -> list[float]:
    """hll_estimate of each row of a (keys, registers) matrix; `nonzero`: each row's count of set registers,
    when the caller knows it (cheaper than scanning every register of a quiet window)."""
    m = registers.shape[-1]
    if registers.shape[0] == 0:
        return []
    if nonzero is None:
        nonzero = np.fromiter(map(np.count_nonzero, registers), dtype=np.int64, count=registers.shape[0])
    empty = m - nonzero
    with np.errstate(divide="ignore"):
        estimates = m * np.log(m / empty)  # linear counting (inf where no register is empty: not chosen then)
    # The raw estimate is alpha·m²/Σ2^-r ≤ alpha·m²/empty, below 2.5·m (linear counting applies) while at
    # least half the registers are empty: it is only worked out for fuller rows.
    full = np.flatnonzero(2 * nonzero > m)
    if len(full):
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / np.sum(np.ldexp(1.0, -registers[full].astype(np.int32)), axis=1)
        estimates[full] = np.where((raw <= 2.5 * m) & (empty[full] > 0), estimates[full], raw)
    return estimates.tolist()


def hll_registers(hashes: U64) -> NDArray[np.uint8]:
    """Registers of a set of hashed items."""
    registers = np.zeros(HLL_REGISTERS, np.uint8)
    index, rank = hll_positions(hashes)
    np.maximum.at(registers, index, rank)
    return registers
