"""Failed bearer tokens per client: a leaky bucket each, a bounded table, no timers."""

from __future__ import annotations

import pytest

from sbc.admin.throttle import FailureThrottle, client_key

T0 = 1000.0


def fail(throttle: FailureThrottle, client: str, times: int, now: float = T0) -> None:
    for _ in range(times):
        assert throttle.retry_after(client, now) == 0.0
        throttle.failed(client, now)


def test_a_client_is_held_after_its_burst_and_only_that_client() -> None:
    throttle = FailureThrottle(burst=5, per_s=0.5, max_clients=16)
    fail(throttle, "192.0.2.1", 5)
    assert throttle.retry_after("192.0.2.1", T0) == pytest.approx(2.0)  # one failure drains in 2 s
    assert throttle.retry_after("192.0.2.2", T0) == 0.0


def test_the_bucket_drains_with_time_without_a_timer() -> None:
    throttle = FailureThrottle(burst=5, per_s=0.5, max_clients=16)
    fail(throttle, "192.0.2.1", 5)
    assert throttle.retry_after("192.0.2.1", T0 + 1.0) == pytest.approx(1.0)
    assert throttle.retry_after("192.0.2.1", T0 + 2.0) == 0.0
    throttle.failed("192.0.2.1", T0 + 2.0)  # one more, then held again
    assert throttle.retry_after("192.0.2.1", T0 + 2.0) == pytest.approx(2.0)
    assert throttle.retry_after("192.0.2.1", T0 + 12.0) == 0.0
    fail(throttle, "192.0.2.1", 5, now=T0 + 12.0)  # fully drained: a whole burst again


def test_failed_reports_the_moment_a_client_becomes_held() -> None:
    throttle = FailureThrottle(burst=3, per_s=1.0, max_clients=16)
    assert [throttle.failed("192.0.2.1", T0) for _ in range(3)] == [False, False, True]


def test_memory_is_bounded_and_new_addresses_share_one_bucket_when_full() -> None:
    """Cycling through addresses must neither grow the table nor escape the limit."""
    throttle = FailureThrottle(burst=5, per_s=0.01, max_clients=100)
    for n in range(100):
        throttle.failed(f"10.0.{n // 256}.{n % 256}", T0)
    refused = 0
    for n in range(100, 10_000):
        client = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
        if throttle.retry_after(client, T0) > 0:
            refused += 1
        else:
            throttle.failed(client, T0)
    assert len(throttle) <= 100 + 1  # the table, plus the shared bucket
    assert refused >= 10_000 - 100 - 5  # the overflow got one burst in all


def test_drained_clients_make_room() -> None:
    throttle = FailureThrottle(burst=5, per_s=1.0, max_clients=2)
    throttle.failed("192.0.2.1", T0)
    throttle.failed("192.0.2.2", T0)
    fail(throttle, "192.0.2.3", 5, now=T0 + 10.0)  # both others drained: it gets its own
    assert throttle.retry_after("192.0.2.3", T0 + 10.0) > 0
    assert throttle.retry_after("192.0.2.4", T0 + 10.0) == 0.0
    assert len(throttle) <= 2


def test_ipv6_clients_share_their_slash_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("testclient") == "testclient"  # not an address: as given
