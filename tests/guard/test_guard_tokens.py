"""TokenBucket: burst, lazy refill, no drift, and the all-or-nothing ``ready`` probe."""

from __future__ import annotations

import pytest

from sbc.guard.tokens import TokenBucket


def takes(bucket: TokenBucket, now: float, count: int) -> list[bool]:
    return [bucket.take(now) for _ in range(count)]


def test_a_new_bucket_allows_exactly_its_burst() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    assert takes(bucket, 100.0, 7) == [True] * 5 + [False, False]


def test_refill_is_rate_per_second_and_capped_at_burst() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert takes(bucket, 0.0, 4) == [True, True, True, False]
    assert takes(bucket, 0.5, 2) == [True, False]  # half a second: one token
    assert takes(bucket, 1.0, 2) == [True, False]
    assert takes(bucket, 60.0, 4) == [True, True, True, False]  # long idle: burst, not 120


def test_tokens_and_full_report_the_refill() -> None:
    bucket = TokenBucket(rate=4, burst=4)
    assert bucket.full(0.0)
    takes(bucket, 0.0, 4)
    assert bucket.tokens(0.0) == pytest.approx(0.0)
    assert bucket.tokens(0.5) == pytest.approx(2.0)
    assert not bucket.full(0.5)
    assert bucket.full(1.0)
    assert bucket.tokens(5.0) == pytest.approx(4.0)


def test_a_refused_take_changes_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.take(0.0)
    for _ in range(1000):
        assert not bucket.take(0.5)
    assert bucket.take(1.0)  # the refusals did not push the refill back


@pytest.mark.parametrize("base", [0.0, 1e6, 1e8])  # 1e8 s: three years of monotonic clock
@pytest.mark.parametrize("rate", [3.0, 7.0, 10.0, 1000.0, 0.3])
def test_requests_exactly_at_the_rate_always_conform(rate: float, base: float) -> None:
    """No float drift: i / rate computed fresh each time never falls short of a token."""
    bucket = TokenBucket(rate=rate, burst=1)
    assert all(bucket.take(base + i / rate) for i in range(20_000))
    assert not bucket.take(base + (20_000 - 0.5) / rate)


def test_sustained_overload_passes_the_rate_and_no_more() -> None:
    bucket = TokenBucket(rate=50, burst=10)
    now, passed = 0.0, 0
    for _ in range(100_000):  # 1000 requests per second for 100 s
        passed += bucket.take(now)
        now += 0.001
    assert 50 * 100 <= passed <= 50 * 100 + 10 + 1


def test_ready_probes_without_spending() -> None:
    bucket = TokenBucket(rate=1, burst=2)
    assert bucket.ready(0.0)
    assert bucket.ready(0.0)
    assert takes(bucket, 0.0, 3) == [True, True, False]
    assert not bucket.ready(0.0)
    assert bucket.ready(1.0)


def test_time_going_backwards_does_not_mint_tokens() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (float("inf"), 1)])
def test_nonsense_parameters_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate, burst)
