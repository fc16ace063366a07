"""PortPool: even RTP ports with RTCP + 1, per media IP, never twice."""

from __future__ import annotations

import pytest

from sbc.media.interface import MediaError
from sbc.media.ports import PortPool, PortsExhaustedError


def test_even_pairs_inside_an_inclusive_range() -> None:
    pool = PortPool()
    ports = [pool.allocate("127.0.0.1", (10001, 10008)) for _ in range(3)]
    assert ports == [10002, 10004, 10006]  # 10008 has no 10009 inside the range
    with pytest.raises(PortsExhaustedError) as info:
        pool.allocate("127.0.0.1", (10001, 10008))
    assert isinstance(info.value, MediaError)
    assert info.value.status == 503
    assert "no media ports" in info.value.reason


def test_release_makes_a_pair_reusable_last() -> None:
    pool = PortPool()
    first = pool.allocate("10.0.0.1", (2000, 2007))
    pool.release("10.0.0.1", first)
    following = [pool.allocate("10.0.0.1", (2000, 2007)) for _ in range(4)]
    assert following == [2002, 2004, 2006, 2000]  # FIFO: the released pair comes last
    assert pool.in_use("10.0.0.1") == 4
    assert pool.free("10.0.0.1", (2000, 2007)) == 0


def test_addresses_are_independent() -> None:
    pool = PortPool()
    assert pool.allocate("127.0.0.1", (4000, 4001)) == 4000
    assert pool.allocate("127.0.0.2", (4000, 4001)) == 4000
    assert pool.in_use() == 2


def test_overlapping_ranges_on_one_ip_never_share_a_port() -> None:
    pool = PortPool()
    small, large = (5000, 5005), (5000, 5009)
    assert pool.allocate("192.0.2.1", small) == 5000
    assert pool.allocate("192.0.2.1", large) == 5002  # 5000 is skipped
    assert pool.allocate("192.0.2.1", small) == 5004  # 5002 is skipped
    with pytest.raises(PortsExhaustedError):
        pool.allocate("192.0.2.1", small)
    assert [pool.allocate("192.0.2.1", large) for _ in range(2)] == [5006, 5008]
    assert pool.in_use("192.0.2.1") == 5
    with pytest.raises(PortsExhaustedError):
        pool.allocate("192.0.2.1", large)


def test_release_through_one_range_returns_the_pair_to_all() -> None:
    pool = PortPool()
    small = (6000, 6001)
    large = (6000, 6003)
    assert pool.allocate("192.0.2.1", small) == 6000
    assert pool.allocate("192.0.2.1", large) == 6002  # 6000 is taken: skipped
    with pytest.raises(PortsExhaustedError):
        pool.allocate("192.0.2.1", large)
    pool.release("192.0.2.1", 6000)
    assert pool.allocate("192.0.2.1", large) == 6000
    pool.release("192.0.2.1", 6000)
    assert pool.allocate("192.0.2.1", small) == 6000


def test_queues_stay_bounded_under_churn() -> None:
    pool = PortPool()
    for _ in range(1000):
        port = pool.allocate("192.0.2.1", (7000, 7003))
        pool.free("192.0.2.1", (7000, 7099))  # a second, wider range exists
        pool.release("192.0.2.1", port)
    assert pool.free("192.0.2.1", (7000, 7099)) == 50
    assert pool.free("192.0.2.1", (7000, 7003)) == 2


def test_misuse_is_refused() -> None:
    pool = PortPool()
    with pytest.raises(ValueError, match="not allocated"):
        pool.release("127.0.0.1", 4000)
    port = pool.allocate("127.0.0.1", (4000, 4003))
    pool.release("127.0.0.1", port)
    with pytest.raises(ValueError, match="not allocated"):
        pool.release("127.0.0.1", port)
    with pytest.raises(ValueError, match="invalid media port range"):
        pool.allocate("127.0.0.1", (5000, 4000))
    with pytest.raises(ValueError, match="invalid media port range"):
        pool.allocate("127.0.0.1", (0, 10))


def test_a_range_of_a_single_port_has_no_pair() -> None:
    pool = PortPool()
    with pytest.raises(PortsExhaustedError):
        pool.allocate("127.0.0.1", (4000, 4000))


def test_pairs_another_process_holds_are_passed_over_and_retried_later() -> None:
    held = {20000, 20002}
    pool = PortPool(available=lambda ip, port: port not in held)
    assert pool.allocate("127.0.0.1", (20000, 20009)) == 20004
    held.clear()  # the other process let go
    assert sorted(pool.allocate("127.0.0.1", (20000, 20009)) for _ in range(4)) == [
        20000,
        20002,
        20006,
        20008,
    ]


def test_a_real_bound_socket_is_seen_as_busy() -> None:
    import socket

    from sbc.media.portcheck import pair_free

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert not pair_free("127.0.0.1", port)
        assert not pair_free("127.0.0.1", port - 1)  # its RTCP neighbour is taken
    assert pair_free("127.0.0.1", port)
