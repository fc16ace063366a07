"""CANCEL before answer, final responses mapped to the caller, timeouts."""

from __future__ import annotations

import pytest
from peers import FakeUA, Net, headers_text, sdp


def test_cancel_after_provisional(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite()
    invite = callee.take_request("INVITE")
    callee.respond(invite, 180)
    caller.clear()
    caller.cancel(a)
    assert caller.take_response(200, "CANCEL")
    terminated = caller.take_response(487, "INVITE")
    assert terminated.from_.tag == a.local_tag
    assert terminated.to.tag is not None
    cancel = callee.take_request("CANCEL")
    assert cancel.call_id == invite.call_id
    assert cancel.top_via.branch == invite.top_via.branch
    assert cancel.cseq.seq == invite.cseq.seq
    assert str(cancel.uri) == str(invite.uri)
    callee.respond(cancel, 200)
    callee.respond(invite, 487)
    assert callee.take_request("ACK").cseq.method == "ACK"  # the layer ACKs the 487
    caller.ack(a)  # non-2xx ACK: absorbed by the transaction
    assert callee.inbox == []
    assert net.core.calls == {}
    assert net.core.dialogs == {}
    net.settle()
    assert len(net.core.layer) == 0


def test_cancel_before_provisional_waits_for_one(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite()
    invite = callee.take_request("INVITE")
    caller.clear()
    caller.cancel(a)
    assert caller.take_response(200, "CANCEL")
    assert caller.take_response(487, "INVITE")
    assert callee.requests("CANCEL") == []  # nothing to cancel yet (RFC 3261 §9.1)
    callee.respond(invite, 100)
    cancel = callee.take_request("CANCEL")
    assert cancel.top_via.branch == invite.top_via.branch
    callee.respond(cancel, 200)
    callee.respond(invite, 487)
    assert caller.responses(487) == []  # answered once only
    net.settle()
    assert net.core.calls == {}
    assert len(net.core.layer) == 0


def test_cancel_before_any_response_then_180(net: Net) -> None:
    a = net.carrier.invite()
    invite = net.pbx.take_request("INVITE")
    net.carrier.cancel(a)
    net.pbx.respond(invite, 180)
    assert net.pbx.take_request("CANCEL")
    assert net.carrier.responses(180) == []  # the caller has its 487 already


def test_2xx_racing_cancel_is_acked_and_byed(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite()
    invite = callee.take_request("INVITE")
    callee.respond(invite, 180)
    caller.cancel(a)
    cancel = callee.take_request("CANCEL")
    callee.respond(invite, 200, body=sdp(callee.host))  # before it saw the CANCEL
    callee.respond(cancel, 481)
    ack = callee.take_request("ACK")
    assert ack.cseq.seq == invite.cseq.seq
    bye = callee.take_request("BYE")
    assert bye.call_id == invite.call_id
    assert caller.responses(200, "INVITE") == []
    callee.respond(bye, 200)
    assert net.core.calls == {}
    assert net.core.dialogs == {}
    net.settle()
    assert len(net.core.layer) == 0


@pytest.mark.parametrize("status", [302, 404, 486, 503, 603])
def test_final_response_mapped_to_caller(
    net: Net, ends: tuple[FakeUA, FakeUA], status: int
) -> None:
    caller, callee = ends
    a = caller.invite()
    invite = callee.take_request("INVITE")
    callee.respond(invite, 180)
    ringing = caller.take_response(180)
    extra = [("Contact", "<sip:2000@192.0.2.99>")] if status == 302 else []
    if status == 503:
        extra.append(("Retry-After", "60"))
    callee.respond(invite, status, headers=extra)
    assert callee.take_request("ACK")
    final = caller.take_response(status)
    assert final.call_id == a.call_id
    assert final.from_.tag == a.local_tag
    assert final.to.tag == ringing.to.tag
    if status == 302:
        assert [str(c.uri) for c in final.contacts] == ["sip:2000@192.0.2.99"]
    else:
        assert "Contact" not in final.headers
        assert callee.host not in headers_text(final)
    if status == 503:
        assert final.headers.get("Retry-After") == "60"
    caller.ack(a)
    assert net.core.calls == {}
    assert net.core.dialogs == {}
    net.settle()
    assert len(net.core.layer) == 0


def test_timer_b_gives_408(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite()
    callee.take_request("INVITE")
    net.advance(31.9)
    assert caller.responses(408) == []
    assert len(callee.requests("INVITE")) > 3  # retransmitted over UDP (Timer A)
    net.advance(0.2)
    final = caller.take_response(408)
    assert final.from_.tag == a.local_tag
    caller.ack(a)
    assert net.core.calls == {}
    net.settle()
    assert len(net.core.layer) == 0


def test_no_answer_timeout_cancels(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite()
    invite = callee.take_request("INVITE")
    callee.respond(invite, 180)
    timeout = net.core.config.no_answer_timeout
    net.advance(timeout - 1)
    assert callee.requests("CANCEL") == []
    net.advance(1)
    final = caller.take_response(408)
    assert final.from_.tag == a.local_tag
    cancel = callee.take_request("CANCEL")
    callee.respond(cancel, 200)
    callee.respond(invite, 487)
    caller.ack(a)
    assert net.core.calls == {}
    net.settle()
    assert len(net.core.layer) == 0
