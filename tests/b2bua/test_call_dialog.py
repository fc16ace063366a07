"""Late offer and in-dialog requests relayed leg to leg."""

from __future__ import annotations

import pytest
from peers import FakeUA, Net, established, headers_text, sdp


def test_late_offer(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite(body=b"")
    invite = callee.take_request("INVITE")
    assert invite.body == b""
    assert "Content-Type" not in invite.headers
    offer = sdp(callee.host)
    callee.respond(invite, 200, body=offer)
    ok = caller.take_response(200)
    assert ok.body == offer
    assert callee.requests("ACK") == []  # waits for the answer in the caller's ACK
    answer = sdp(caller.host, version=3)
    caller.ack(a, body=answer)
    ack = callee.take_request("ACK")
    assert ack.body == answer
    assert ack.content_type == "application/sdp"
    assert ack.cseq.seq == invite.cseq.seq
    assert caller.host not in headers_text(ack)


@pytest.mark.parametrize("from_caller", [True, False], ids=["caller-side", "callee-side"])
def test_reinvite_hold_resume(net: Net, ends: tuple[FakeUA, FakeUA], from_caller: bool) -> None:
    caller, callee = ends
    a, b = established(net, caller, callee)
    src, dst, dlg = (caller, callee, a) if from_caller else (callee, caller, b)
    dlg.cseq = 500  # far from anything the SBC would pick itself
    seqs = []
    for version, direction in ((2, "sendonly"), (3, "sendrecv")):
        offer = sdp(src.host, direction=direction, version=version)
        reinvite = src.request(dlg, "INVITE", body=offer)
        out = dst.take_request("INVITE")
        assert out.body == offer
        assert src.host not in headers_text(out)
        seqs.append(out.cseq.seq)
        answer = sdp(dst.host, direction="recvonly" if direction == "sendonly" else direction)
        dst.respond(out, 200, body=answer)
        ok = src.take_response(200, "INVITE")
        assert ok.body == answer
        assert ok.cseq.seq == reinvite.cseq.seq
        assert ok.call_id == reinvite.call_id
        assert dst.take_request("ACK").cseq.seq == out.cseq.seq
        src.request(dlg, "ACK", cseq=reinvite.cseq.seq)
        assert dst.requests("ACK") == []
    # Each leg has its own CSeq sequence, increasing by one.
    assert seqs[1] == seqs[0] + 1
    assert seqs[0] < 500
    assert len(net.core.calls) == 1


@pytest.mark.parametrize("method", ["UPDATE", "INFO", "OPTIONS", "NOTIFY", "REFER"])
@pytest.mark.parametrize("from_caller", [True, False], ids=["caller-side", "callee-side"])
def test_in_dialog_relay(
    net: Net, ends: tuple[FakeUA, FakeUA], method: str, from_caller: bool
) -> None:
    caller, callee = ends
    a, b = established(net, caller, callee)
    src, dst, dlg = (caller, callee, a) if from_caller else (callee, caller, b)
    headers = {
        "INFO": [("Content-Type", "application/dtmf-relay")],
        "NOTIFY": [("Event", "refer"), ("Subscription-State", "active")],
        "REFER": [("Refer-To", "<sip:3000@192.0.2.1>")],
    }.get(method, [])
    body = {"UPDATE": sdp(src.host, version=5), "INFO": b"Signal=5\r\nDuration=160\r\n"}
    sent = src.request(dlg, method, body=body.get(method, b""), headers=headers)
    out = dst.take_request(method)
    assert out.body == sent.body
    for name, value in headers:
        if name == "Refer-To":
            # The transfer target keeps its user; its host becomes the SBC's own
            # address on the outgoing leg, so the transfer comes back through us.
            sbc_host = "127.0.0.2" if dst.host == "127.0.0.20" else "127.0.0.1"
            assert out.headers.get(name) == f"<sip:3000@{sbc_host}:5060>"
        else:
            assert out.headers.get(name) == value
    assert src.host not in headers_text(out)
    assert out.call_id == dst.dialogs[out.call_id].call_id
    dst.respond(out, 202 if method == "REFER" else 200)
    resp = src.take_response(202 if method == "REFER" else 200, method)
    assert resp.cseq.seq == sent.cseq.seq
    assert resp.call_id == sent.call_id
    assert dst.host not in headers_text(resp)


def test_failure_response_relayed(net: Net) -> None:
    a, _ = established(net, net.carrier, net.pbx)
    net.carrier.request(a, "INFO", body=b"x", headers=[("Content-Type", "text/plain")])
    info = net.pbx.take_request("INFO")
    net.pbx.respond(info, 415)
    assert net.carrier.take_response(415, "INFO")
    assert len(net.core.calls) == 1


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_glare_491(net: Net, ends: tuple[FakeUA, FakeUA], method: str) -> None:
    caller, callee = ends
    a, b = established(net, caller, callee)
    caller.request(a, "INVITE", body=sdp(caller.host, version=2))
    out = callee.take_request("INVITE")
    # The callee sends its own offer while ours is pending on its leg.
    callee.request(b, method, body=sdp(callee.host, version=2))
    assert callee.take_response(491, method)
    assert caller.requests(method) == []
    # And the caller may not start a second one either.
    caller.request(a, method, body=sdp(caller.host, version=3))
    assert caller.take_response(491, method)
    callee.respond(out, 200, body=sdp(callee.host, version=3))
    assert caller.take_response(200, "INVITE")
    # Once it is done, a new offer goes through.
    caller.request(a, "ACK", cseq=a.cseq - 1)
    callee.request(b, method, body=sdp(callee.host, version=4))
    assert caller.take_request(method)


def test_reinvite_late_offer_ack_carries_answer(net: Net) -> None:
    a, _ = established(net, net.carrier, net.pbx)
    reinvite = net.carrier.request(a, "INVITE")
    out = net.pbx.take_request("INVITE")
    assert out.body == b""
    offer = sdp("127.0.0.20", version=7)
    net.pbx.respond(out, 200, body=offer)
    assert net.carrier.take_response(200, "INVITE").body == offer
    assert net.pbx.requests("ACK") == []
    answer = sdp("127.0.0.10", version=7)
    net.carrier.request(a, "ACK", cseq=reinvite.cseq.seq, body=answer)
    assert net.pbx.take_request("ACK").body == answer


def test_late_offer_200_retransmission_waits_for_answer(
    net: Net, ends: tuple[FakeUA, FakeUA]
) -> None:
    """A re-sent 2xx must not get an ACK without the answer (RFC 3264 §4)."""
    caller, callee = ends
    a = caller.invite(body=b"")
    invite = callee.take_request("INVITE")
    ok = callee.respond(invite, 200, body=sdp(callee.host))
    callee.resend(ok)
    assert callee.requests("ACK") == []
    answer = sdp(caller.host, version=3)
    caller.ack(a, body=answer)
    assert callee.take_request("ACK").body == answer
    callee.resend(ok)
    assert callee.take_request("ACK").body == answer  # later re-ACKs carry it too


def test_reinvite_rejected_then_next_goes_through(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a, _ = established(net, caller, callee)
    reinvite = caller.request(a, "INVITE", body=sdp(caller.host, version=2))
    out = callee.take_request("INVITE")
    callee.respond(out, 488)
    assert callee.take_request("ACK").cseq.seq == out.cseq.seq  # hop-by-hop ACK
    rejected = caller.take_response(488, "INVITE")
    assert rejected.cseq.seq == reinvite.cseq.seq
    caller.request(a, "ACK", cseq=reinvite.cseq.seq)  # absorbed by the transaction
    assert callee.requests("ACK") == []
    caller.request(a, "INVITE", body=sdp(caller.host, version=3))
    assert callee.take_request("INVITE")
    assert len(net.core.calls) == 1


def test_bye_crossing(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a, b = established(net, caller, callee)
    caller.request(a, "BYE")
    callee.request(b, "BYE")
    assert caller.take_response(200, "BYE")
    assert callee.take_response(200, "BYE")
    callee.respond(callee.take_request("BYE"), 481)
    assert net.core.calls == {}
    assert net.core.dialogs == {}
    net.settle()
    assert len(net.core.layer) == 0


@pytest.mark.parametrize("from_caller", [True, False], ids=["caller-side", "callee-side"])
def test_reinvite_2xx_retransmission_reacked(
    net: Net, ends: tuple[FakeUA, FakeUA], from_caller: bool
) -> None:
    caller, callee = ends
    a, b = established(net, caller, callee)
    src, dst, dlg = (caller, callee, a) if from_caller else (callee, caller, b)
    reinvite = src.request(dlg, "INVITE", body=sdp(src.host, version=2))
    out = dst.take_request("INVITE")
    ok = dst.respond(out, 200, body=sdp(dst.host, version=2))
    first = dst.take_request("ACK")
    src.request(dlg, "ACK", cseq=reinvite.cseq.seq)
    dst.resend(ok)
    assert dst.take_request("ACK").serialize() == first.serialize()
    assert len(src.responses(200, "INVITE")) == 1


def test_cancelled_reinvite_is_cancelled_on_other_leg(net: Net) -> None:
    a, _ = established(net, net.carrier, net.pbx)
    reinvite = net.carrier.request(a, "INVITE", body=sdp("127.0.0.10", version=2))
    out = net.pbx.take_request("INVITE")
    net.pbx.respond(out, 180)
    cancel = (
        f"CANCEL {reinvite.uri} SIP/2.0\r\nVia: {reinvite.headers.get('Via')}\r\n"
        f"Max-Forwards: 70\r\nFrom: {reinvite.headers.get('From')}\r\n"
        f"To: {reinvite.headers.get('To')}\r\nCall-ID: {reinvite.call_id}\r\n"
        f"CSeq: {reinvite.cseq.seq} CANCEL\r\nContent-Length: 0\r\n\r\n"
    )
    net.deliver(net.carrier, cancel.encode())
    assert net.carrier.take_response(487, "INVITE")
    assert net.pbx.take_request("CANCEL").top_via.branch == out.top_via.branch
