"""Sliding-window limits with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zhiban.core.errors import InvalidInput
from zhiban.notify.ratelimit import FEISHU_RATES, PER_MINUTE_20, Rate, RateLimiter
from zhiban.notify.registry import rate_limits_for

T0 = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_twenty_a_minute_then_wait_until_the_first_leaves_the_window() -> None:
    limiter = RateLimiter(PER_MINUTE_20)
    for i in range(20):
        assert limiter.acquire("dingtalk:ops", T0 + i * SECOND) is None
    # The 21st at T0+20s must wait until T0+60s, when the first send leaves the window.
    assert limiter.acquire("dingtalk:ops", T0 + 20 * SECOND) == 40 * SECOND
    assert limiter.acquire("dingtalk:ops", T0 + 59 * SECOND) == SECOND
    assert limiter.acquire("dingtalk:ops", T0 + 60 * SECOND) is None
    assert limiter.acquire("dingtalk:ops", T0 + 60 * SECOND) == SECOND  # the second send (T0+1s) blocks now


def test_a_refused_attempt_does_not_count() -> None:
    limiter = RateLimiter([Rate(1, timedelta(minutes=1))])
    assert limiter.acquire("k", T0) is None
    for i in range(1, 50):
        assert limiter.acquire("k", T0 + i * SECOND) is not None
    assert limiter.acquire("k", T0 + 60 * SECOND) is None


def test_keys_are_independent() -> None:
    limiter = RateLimiter([Rate(1, timedelta(minutes=1))])
    assert limiter.acquire("wecom:a", T0) is None
    assert limiter.acquire("wecom:b", T0) is None
    assert limiter.acquire("wecom:a", T0) == timedelta(minutes=1)


def test_the_tighter_of_two_rates_decides() -> None:
    limiter = RateLimiter(FEISHU_RATES)  # 100 a minute and 5 a second
    for _ in range(5):
        assert limiter.acquire("feishu:x", T0) is None
    assert limiter.acquire("feishu:x", T0) == SECOND
    moments = [T0 + SECOND + i * timedelta(milliseconds=250) for i in range(95)]
    for moment in moments:
        assert limiter.acquire("feishu:x", moment) is None
    # 100 sends within the minute: the next waits for the first (at T0) to leave the minute window.
    last = moments[-1]
    assert limiter.acquire("feishu:x", last + timedelta(milliseconds=250)) == T0 + timedelta(minutes=1) - (
        last + timedelta(milliseconds=250)
    )


def test_limits_follow_the_channel_type_of_the_key() -> None:
    limiter = RateLimiter(rate_limits_for)
    for _ in range(20):
        assert limiter.acquire("wecom:ops-group", T0) is None
    assert limiter.acquire("wecom:ops-group", T0) is not None
    for _ in range(100):
        assert limiter.acquire("email:anyone", T0) is None  # no limit for mail
    assert limiter.acquire("nonsense", T0) is None


def test_memory_stays_bounded() -> None:
    limiter = RateLimiter([Rate(1, timedelta(minutes=1))], max_keys=10)
    for i in range(1_000):
        limiter.acquire(f"k{i}", T0 + i * SECOND)
    assert len(limiter._sent) <= 10


def test_bad_rates_are_refused() -> None:
    with pytest.raises(InvalidInput):
        Rate(0, timedelta(minutes=1))
    with pytest.raises(InvalidInput):
        Rate(5, timedelta(0))


@given(
    count=st.integers(1, 6),
    window_s=st.integers(1, 30),
    gaps_ms=st.lists(st.integers(0, 5_000), min_size=1, max_size=80),
)
def test_never_more_than_count_in_any_window(count: int, window_s: int, gaps_ms: list[int]) -> None:
    window = timedelta(seconds=window_s)
    limiter = RateLimiter([Rate(count, window)])
    now = T0
    granted: list[datetime] = []
    for gap in gaps_ms:
        now += timedelta(milliseconds=gap)
        wait = limiter.acquire("k", now)
        if wait is None:
            granted.append(now)
        else:
            assert wait > timedelta(0)
            # Waiting exactly as told is enough.
            assert RateLimiterProbe.allowed_after(granted, count, window, now + wait)
    for moment in granted:
        assert sum(1 for other in granted if moment - window < other <= moment) <= count


class RateLimiterProbe:
    @staticmethod
    def allowed_after(granted: list[datetime], count: int, window: timedelta, moment: datetime) -> bool:
        return sum(1 for other in granted if moment - window < other <= moment) < count
