"""Stable 64-bit hashes of strings, vectorized: the same value in every process (unlike hash())."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

U64 = NDArray[np.uint64]

_FNV_OFFSET: Final = np.uint64(0xCBF29CE484222325)
_FNV_PRIME: Final = np.uint64(0x100000001B3)


def mix64(values: U64) -> U64:
    """SplitMix64 finalizer: spreads every input bit over the whole word (HyperLogLog needs uniform bits)."""
    z = values.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def hash_strings(values: Sequence[str]) -> U64:
    """FNV-1a over the code points of each string, then mixed; padding is never hashed."""
    n = len(values)
    if n == 0:
        return np.zeros(0, np.uint64)
    text = np.array(values, dtype=np.str_)
    width = text.dtype.itemsize // 4
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    if width == 0:
        return mix64(h)
    points = text.view(np.uint32).reshape(n, width).astype(np.uint64)
    for j in range(width):
        column = points[:, j]
        stepped = (h ^ column) * _FNV_PRIME
        # Strings shorter than the widest one are zero-padded by numpy; stop hashing at their end.
        h = np.where(column != 0, stepped, h)
    return mix64(h)


def combine(first: U64, second: U64) -> U64:
    """Hash of a pair of hashes (order matters)."""
    return mix64(first * np.uint64(0x9E3779B97F4A7C15) ^ second)
