"""Session timers (RFC 4028) and retransmissions, with the clock moved by hand."""

from __future__ import annotations

from peers import FakeUA, Net, sdp

ST = [("Session-Expires", "300"), ("Supported", "timer")]


def test_caller_refresher_session_expires(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite(headers=ST)
    invite = callee.take_request("INVITE")
    callee.respond(invite, 200, body=sdp(callee.host))
    ok = caller.take_response(200)
    assert ok.headers.get("Session-Expires") == "300;refresher=uac"
    assert "timer" in ok.option_tags("Require")
    caller.ack(a)
    callee.clear()
    net.advance(267.9)
    assert caller.requests("BYE") == []  # BYE at 300 - min(32, 300/3) (RFC 4028 §10)
    net.advance(0.1)
    a_bye = caller.take_request("BYE")
    b_bye = callee.take_request("BYE")
    caller.respond(a_bye, 200)
    callee.respond(b_bye, 200)
    assert net.core.calls == {}
    net.settle()
    assert len(net.core.layer) == 0


def test_caller_refresh_keeps_call(net: Net) -> None:
    a = net.carrier.invite(headers=ST)
    invite = net.pbx.take_request("INVITE")
    net.pbx.respond(invite, 200, body=sdp("127.0.0.20"))
    net.carrier.ack(a)
    net.pbx.clear()
    for _ in range(3):
        net.advance(150)
        net.carrier.request(a, "UPDATE", headers=[("Session-Expires", "300;refresher=uac")])
        update = net.pbx.take_request("UPDATE")
        net.pbx.respond(update, 200)
        assert net.carrier.take_response(200, "UPDATE")
    net.advance(200)
    assert net.carrier.requests("BYE") == []
    assert len(net.core.calls) == 1


def test_we_refresh_b_leg_with_update(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite()
    invite = callee.take_request("INVITE")
    assert invite.headers.get("Session-Expires") == "1800"
    callee.respond(
        invite,
        200,
        body=sdp(callee.host),
        headers=[("Session-Expires", "1800;refresher=uac"), ("Require", "timer")],
    )
    caller.ack(a)
    callee.clear()
    net.advance(899)
    assert callee.requests("UPDATE") == []
    net.advance(1)
    update = callee.take_request("UPDATE")
    assert update.headers.get("Session-Expires") == "1800;refresher=uac"
    assert caller.requests("UPDATE") == []  # our own refresh does not cross
    callee.respond(update, 200, headers=[("Session-Expires", "1800;refresher=uac")])
    net.advance(900)
    update = callee.take_request("UPDATE")
    callee.respond(update, 481)
    a_bye = caller.take_request("BYE")
    b_bye = callee.take_request("BYE")
    caller.respond(a_bye, 200)
    callee.respond(b_bye, 481)
    assert net.core.calls == {}
    assert net.core.dialogs == {}
    net.settle()
    assert len(net.core.layer) == 0


def test_invite_retransmission_absorbed(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite()
    assert a.invite is not None
    net.advance(0.5)
    caller.resend(a.invite)
    caller.resend(a.invite)
    assert len(callee.requests("INVITE")) == 2  # the original + our own Timer A resend
    assert len({m.top_via.branch for m in callee.requests("INVITE")}) == 1
    assert len(net.core.calls) == 1
    assert len(caller.responses(100)) == 3  # each retransmission gets the 100 again


def test_lost_200_retransmitted_until_ack(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite()
    invite = callee.take_request("INVITE")
    net.drop_next.add(caller.name)
    callee.respond(invite, 200, body=sdp(callee.host))
    assert caller.responses(200) == []
    net.advance(0.5)
    assert len(caller.responses(200)) == 1
    net.advance(1.0)
    assert len(caller.responses(200)) == 2
    caller.ack(a)
    net.advance(10)
    assert len(caller.responses(200)) == 2
    assert len(net.core.calls) == 1


def test_callee_200_retransmission_reacked(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    caller.invite()
    invite = callee.take_request("INVITE")
    ok = callee.respond(invite, 200, body=sdp(callee.host))
    first = callee.take_request("ACK")
    callee.resend(ok)
    again = callee.take_request("ACK")
    assert again.serialize() == first.serialize()
    assert len(caller.responses(200)) == 1  # not relayed twice


def test_never_acked_200_ends_call(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    caller.invite()
    invite = callee.take_request("INVITE")
    callee.respond(invite, 200, body=sdp(callee.host))
    callee.clear()
    net.advance(64 * 0.5 - 0.1)
    assert callee.requests("BYE") == []
    net.advance(0.2)
    a_bye = caller.take_request("BYE")
    b_bye = callee.take_request("BYE")
    caller.respond(a_bye, 200)
    callee.respond(b_bye, 200)
    assert net.core.calls == {}
    assert net.core.dialogs == {}
    net.settle()
    assert len(net.core.layer) == 0
