"""m= line bombs through the core: an INVITE whose SDP has more media streams
than ``media.max_streams`` is refused 488 before any B-leg or port, and a
re-INVITE cannot grow an established call past it."""

from __future__ import annotations

from peers import Net, NoRelay, established, sdp

from sbc.media.anchor import MediaAnchor
from sbc.media.ports import PortPool


def bomb(host: str, streams: int) -> bytes:
    """``sdp(host)`` with ``streams`` audio m= lines."""
    head, media = sdp(host).split(b"m=audio 4000", 1)
    return head + b"".join(b"m=audio %d%s" % (6000 + 2 * i, media) for i in range(streams))


def anchored(net: Net) -> PortPool:
    pool = PortPool()
    net.core.media = MediaAnchor(NoRelay(), pool)
    return pool


def test_an_invite_with_nine_m_lines_is_refused_before_any_b_leg(net: Net) -> None:
    pool = anchored(net)
    net.carrier.invite(body=bomb("127.0.0.10", 9))
    refused = net.carrier.take_response(488, "INVITE")
    assert "9 media streams" in refused.reason
    assert net.pbx.requests("INVITE") == []
    assert not [data for target, data in net.log if target.host == "127.0.0.20"]
    assert net.core.calls == {}
    assert pool.in_use() == 0


def test_eight_m_lines_cross(net: Net) -> None:
    pool = anchored(net)
    net.carrier.invite(body=bomb("127.0.0.10", 8))
    assert net.pbx.take_request("INVITE").body.count(b"m=audio") == 8
    assert pool.in_use() == 16


def test_a_reinvite_cannot_grow_the_call(net: Net) -> None:
    pool = anchored(net)
    a, _ = established(net, net.carrier, net.pbx)
    held = pool.in_use()
    net.carrier.request(a, "INVITE", body=bomb("127.0.0.10", 9))
    assert net.carrier.take_response(488, "INVITE")
    assert net.pbx.requests("INVITE") == []
    assert pool.in_use() == held
    assert len(net.core.calls) == 1
