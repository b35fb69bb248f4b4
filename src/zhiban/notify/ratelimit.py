"""Per-destination send limits (a sliding-window log), pure: the caller passes the time."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from zhiban.core.errors import InvalidInput


@dataclass(frozen=True)
class Rate:
    """At most `count` sends in any window of length `per`."""

    count: int
    per: timedelta

    def __post_init__(self) -> None:
        if not (1 <= self.count <= 100_000) or self.per <= timedelta(0):
            raise InvalidInput("a rate needs 1-100000 sends over a positive period")


# DingTalk and WeCom robots take 20 messages a minute; Feishu custom bots 100 a minute and 5 a second;
# Slack incoming webhooks about one a second. Beyond these the provider drops or refuses messages.
PER_MINUTE_20 = (Rate(20, timedelta(minutes=1)),)
FEISHU_RATES = (Rate(100, timedelta(minutes=1)), Rate(5, timedelta(seconds=1)))
SLACK_RATES = (Rate(1, timedelta(seconds=1)),)

LimitsFor = Callable[[str], Sequence[Rate]]


class RateLimiter:
    """Sliding-window limits per key; `acquire` records a send or says how long to wait."""

    def __init__(self, limits: LimitsFor | Sequence[Rate], *, max_keys: int = 10_000) -> None:
        if callable(limits):
            self._limits: LimitsFor = limits
        else:
            fixed = tuple(limits)

            def same_for_every_key(_key: str) -> Sequence[Rate]:
                return fixed

            self._limits = same_for_every_key
        self._max_keys = max_keys
        self._sent: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: str, now: datetime) -> timedelta | None:
        """Record a send now and return None, or return the wait before a send would be allowed."""
        rates = self._limits(key)
        if not rates:
            return None
        keep = max(rate.count for rate in rates)
        with self._lock:
            sent = self._sent.get(key)
            if sent is None:
                self._evict(now)
                sent = self._sent[key] = deque(maxlen=keep)
            elif sent.maxlen is not None and sent.maxlen < keep:
                sent = self._sent[key] = deque(sent, maxlen=keep)
            self._sent.move_to_end(key)
            wait = timedelta(0)
            for rate in rates:
                in_window = [moment for moment in sent if moment > now - rate.per]
                if len(in_window) >= rate.count:
                    # The send that must leave the window before another fits in it.
                    blocking = in_window[len(in_window) - rate.count]
                    wait = max(wait, blocking + rate.per - now)
            if wait > timedelta(0):
                return wait
            sent.append(now)
            return None

    def _evict(self, now: datetime) -> None:
        # Bounded memory: drop idle keys first, then the least recently used ones.
        if len(self._sent) < self._max_keys:
            return
        for key in [k for k, sent in self._sent.items() if self._idle(k, sent, now)]:
            del self._sent[key]
        while len(self._sent) >= self._max_keys:
            self._sent.popitem(last=False)

    def _idle(self, key: str, sent: deque[datetime], now: datetime) -> bool:
        longest = max((rate.per for rate in self._limits(key)), default=timedelta(0))
        return not sent or sent[-1] <= now - longest
