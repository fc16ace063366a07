"""A basic call in both directions: what each far end receives, byte by byte."""

from __future__ import annotations

from peers import FakeUA, Net, sdp

from sbc.sip.message import Request, Response


def headers_text(message: Request | Response) -> str:
    """Everything but the body, as on the wire."""
    return message.serialize().split(b"\r\n\r\n", 1)[0].decode()


def test_basic_call_caller_hangs_up(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    offer = sdp(caller.host)
    a = caller.invite("1000", body=offer)
    trying = caller.take_response(100)
    assert trying.call_id == a.call_id

    invite = callee.take_request("INVITE")
    assert invite.call_id != a.call_id
    assert invite.from_.tag not in (None, a.local_tag)
    via = invite.top_via
    assert via.host == callee.sbc_host
    assert (via.branch or "").startswith("z9hG4bK")
    assert len(invite.vias) == 1
    assert [c.uri.host for c in invite.contacts] == [callee.sbc_host]  # type: ignore[union-attr]
    assert "Record-Route" not in invite.headers
    assert caller.host not in headers_text(invite)
    assert invite.body == offer  # SDP passes unchanged in this issue

    callee.respond(invite, 100)
    callee.respond(invite, 180)
    ringing = caller.take_response(180)
    early = sdp(callee.host, direction="sendonly")
    callee.respond(invite, 183, body=early)
    progress = caller.take_response(183)
    assert progress.body == early
    answer = sdp(callee.host, version=2)
    callee.respond(invite, 200, body=answer)
    ok = caller.take_response(200)
    assert ok.body == answer

    tags = {ringing.to.tag, progress.to.tag, ok.to.tag}
    assert len(tags) == 1
    assert None not in tags
    for response in (ringing, progress, ok):
        assert response.call_id == a.call_id
        assert response.from_.tag == a.local_tag
        assert [c.uri.host for c in response.contacts] == [caller.sbc_host]  # type: ignore[union-attr]
        assert callee.host not in headers_text(response)
    # The callee gets its own ACK at once (early offer), in its own dialog.
    b_ack = callee.take_request("ACK")
    assert b_ack.call_id == invite.call_id
    assert b_ack.cseq.seq == invite.cseq.seq
    assert b_ack.to.tag == callee.dialog_of(invite).local_tag
    assert caller.host not in headers_text(b_ack)

    caller.ack(a)
    assert callee.requests("ACK") == []  # the caller's ACK does not cross
    call = next(iter(net.core.calls.values()))
    assert call.state.name == "CONFIRMED"

    bye = caller.request(a, "BYE")
    assert caller.take_response(200, "BYE").call_id == bye.call_id
    b_bye = callee.take_request("BYE")
    assert b_bye.call_id == invite.call_id
    assert caller.host not in headers_text(b_bye)
    callee.respond(b_bye, 200)
    assert net.core.calls == {}
    assert net.core.dialogs == {}
    net.settle()
    assert len(net.core.layer) == 0
    assert net.core.layer.pending_acks == 0


def test_basic_call_callee_hangs_up(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite()
    invite = callee.take_request("INVITE")
    callee.respond(invite, 180)
    callee.respond(invite, 200, body=sdp(callee.host))
    caller.take_response(200)
    caller.ack(a)
    callee.take_request("ACK")

    b = callee.dialog_of(invite)
    callee.request(b, "BYE")
    assert callee.take_response(200, "BYE")
    a_bye = caller.take_request("BYE")
    assert a_bye.call_id == a.call_id
    assert a_bye.to.tag == a.local_tag
    assert a_bye.from_.tag == a.remote_tag
    assert a_bye.uri.host == caller.host  # type: ignore[union-attr]
    assert callee.host not in headers_text(a_bye)
    caller.respond(a_bye, 200)
    assert net.core.calls == {}
    assert net.core.dialogs == {}
    net.settle()
    assert len(net.core.layer) == 0


def test_headers_of_other_leg_never_cross(net: Net) -> None:
    """Only the SDP body may name the carrier on the PBX side."""
    a = net.carrier.invite(headers=[("Record-Route", "<sip:127.0.0.10;lr>"), ("X-Secret", "1")])
    invite = net.pbx.take_request("INVITE")
    assert "127.0.0.10" not in headers_text(invite)
    assert "X-Secret" not in invite.headers
    net.pbx.respond(invite, 200, body=sdp("127.0.0.20"), headers=[("X-Internal", "pbx")])
    ok = net.carrier.take_response(200)
    assert "127.0.0.20" not in headers_text(ok)
    assert "X-Internal" not in ok.headers
    net.carrier.ack(a)
    for target, data in net.log:
        head = data.split(b"\r\n\r\n", 1)[0]
        other = b"127.0.0.10" if target.host == "127.0.0.20" else b"127.0.0.20"
        assert other not in head, data
