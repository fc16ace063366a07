"""m= line bombs: an SDP with more media streams than ``media.max_streams``
is refused (488, RFC 3264 §6, RFC 3261 §21.4.26) before any port is taken,
and no offer or re-offer grows a call past that many anchored streams (two
RTP/RTCP pairs each: one per leg)."""

from __future__ import annotations

import pytest
from test_anchor import LEG_A, LEG_B, FakeRelay

from sbc.media.anchor import DEFAULT_MAX_STREAMS, MediaAnchor
from sbc.media.interface import MediaError
from sbc.media.ports import PortPool

PAIRS_PER_STREAM = 2  # one RTP/RTCP pair on each leg


def offer(streams: int, host: str = "127.0.0.10", *, rejected: int = 0) -> bytes:
    """An SDP with ``streams`` audio m= lines (the last ``rejected`` of them port 0)."""
    lines = ["v=0", f"o=- 1 1 IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0"]
    for index in range(streams):
        port = 0 if index >= streams - rejected else 6000 + 2 * index
        lines += [f"m=audio {port} RTP/AVP 0", "a=rtpmap:0 PCMU/8000"]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture
def relay() -> FakeRelay:
    return FakeRelay()


@pytest.fixture
def pool() -> PortPool:
    return PortPool()


def anchor_with(relay: FakeRelay, pool: PortPool, max_streams: int | None = None) -> MediaAnchor:
    media = (
        MediaAnchor(relay, pool)
        if max_streams is None
        else MediaAnchor(relay, pool, max_streams=max_streams)
    )
    media.open("call", LEG_A, LEG_B)
    return media


def test_the_default_cap_is_eight() -> None:
    assert DEFAULT_MAX_STREAMS == 8


def test_nine_m_lines_are_refused_before_any_port(relay: FakeRelay, pool: PortPool) -> None:
    anchor = anchor_with(relay, pool)
    with pytest.raises(MediaError) as info:
        anchor.offer("call", "a", "b", offer(9))
    assert info.value.status == 488
    assert "9 media streams" in info.value.reason
    assert "at most 8" in info.value.reason
    assert pool.in_use() == 0
    assert relay.updates == []


def test_rejected_m_lines_count_too(relay: FakeRelay, pool: PortPool) -> None:
    """Every m= line costs parsing and rewriting, port or not."""
    anchor = anchor_with(relay, pool)
    with pytest.raises(MediaError):
        anchor.offer("call", "a", "b", offer(40, rejected=39))
    assert pool.in_use() == 0


def test_eight_m_lines_are_anchored(relay: FakeRelay, pool: PortPool) -> None:
    anchor = anchor_with(relay, pool)
    anchor.offer("call", "a", "b", offer(8))
    assert pool.in_use() == 8 * PAIRS_PER_STREAM


def test_a_reoffer_cannot_grow_the_call_past_the_cap(relay: FakeRelay, pool: PortPool) -> None:
    anchor = anchor_with(relay, pool)
    anchor.offer("call", "a", "b", offer(8))
    anchor.answer("call", "b", "a", offer(8, "127.0.0.20"))
    updates = len(relay.updates)
    for side, to in (("a", "b"), ("b", "a")):
        with pytest.raises(MediaError) as info:
            anchor.offer("call", side, to, offer(9, "127.0.0.10" if side == "a" else "127.0.0.20"))
        assert info.value.status == 488
        assert pool.in_use() == 8 * PAIRS_PER_STREAM
        assert len(relay.updates) == updates
    anchor.offer("call", "a", "b", offer(8))  # the call goes on
    assert pool.in_use() == 8 * PAIRS_PER_STREAM


def test_ports_per_call_stay_within_the_cap_across_reoffers(
    relay: FakeRelay, pool: PortPool
) -> None:
    """Streams dropped, added back, offers refused by the far end, a lower cap
    after a reload: the call never holds more than max_streams streams' ports."""
    anchor = anchor_with(relay, pool, max_streams=3)
    bound = 3 * PAIRS_PER_STREAM
    anchor.offer("call", "a", "b", offer(3))
    anchor.answer("call", "b", "a", offer(3, "127.0.0.20"))
    for streams, rejected in ((1, 0), (3, 2), (3, 0), (2, 0), (3, 1)):
        anchor.offer("call", "a", "b", offer(streams, rejected=rejected))
        assert pool.in_use() <= bound
        anchor.rejected("call", "a")  # the far end said 488
        assert pool.in_use() <= bound
    anchor.max_streams = 2  # a reload lowers the cap: the call keeps what it has...
    with pytest.raises(MediaError):
        anchor.offer("call", "a", "b", offer(3))  # ...and cannot grow again
    assert pool.in_use() <= bound
    anchor.delete("call")
    assert pool.in_use() == 0


def test_a_cap_below_one_is_refused(relay: FakeRelay, pool: PortPool) -> None:
    with pytest.raises(ValueError, match="max_streams"):
        MediaAnchor(relay, pool, max_streams=0)


def test_a_refused_reoffer_that_dropped_a_stream_leaves_a_consistent_call(
    relay: FakeRelay, pool: PortPool
) -> None:
    """A re-offer with fewer m= lines drops streams at once (their ports go
    back to the pool); the far end refusing it must not resurrect them
    without ports (it raised KeyError) nor leak them."""
    anchor = anchor_with(relay, pool)
    anchor.offer("call", "a", "b", offer(3))
    anchor.answer("call", "b", "a", offer(3, "127.0.0.20"))
    anchor.offer("call", "a", "b", offer(1))
    assert pool.in_use() == PAIRS_PER_STREAM
    anchor.rejected("call", "a")
    assert pool.in_use() == PAIRS_PER_STREAM
    assert set(relay.specs) == {("call", 0)}
    anchor.offer("call", "a", "b", offer(3))  # the streams can come back
    assert pool.in_use() == 3 * PAIRS_PER_STREAM
    anchor.delete("call")
    assert pool.in_use() == 0
