"""Login throttling: a sliding window of failures per key (e-mail, client address), in memory."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from datetime import datetime, timedelta


class LoginThrottle:
    """Refuses a key after `limit` failures within `window`; bounded to `max_keys` keys."""

    def __init__(self, limit: int = 5, window: timedelta = timedelta(minutes=15), max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def blocked(self, key: str, now: datetime) -> bool:
        with self._lock:
            return len(self._recent(key, now)) >= self.limit

    def failed(self, key: str, now: datetime) -> None:
        with self._lock:
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
