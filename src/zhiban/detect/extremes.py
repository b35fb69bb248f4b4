"""New extremes: a value beyond the whole range seen so far, by a share of that range.

Numenta's HTM detector calls this a "spatial anomaly". In incident data the labelled anomaly is
often the most extreme value of the series up to then, while the learned contexts of a noisy
series keep firing on ordinary wiggles; a new extreme separates the two without any model.
"""

from __future__ import annotations

import math


class SeenRange:
    """Lowest and highest value seen so far; `beyond` tells whether a value leaves that range."""

    def __init__(self, margin: float) -> None:
        self.margin = margin  # share of the seen span a value must clear to count as beyond
        self.low = math.inf
        self.high = -math.inf

    @property
    def span(self) -> float:
        """Width of the range seen so far (0 before two distinct values)."""
        return self.high - self.low if self.high >= self.low else 0.0

    def beyond(self, x: float) -> bool:
        """Whether x lies beyond the range seen so far by more than `margin` of its span.

        A flat history (span 0) has no scale to measure against, so nothing counts as beyond it;
        the first move away from a flat line is left to the contextual novelty.
        """
        span = self.span
        if span <= 0.0:
            return False
        slack = self.margin * span
        return x > self.high + slack or x < self.low - slack

    def add(self, x: float) -> None:
        """Widen the range to hold x."""
        self.low = min(self.low, x)
        self.high = max(self.high, x)
