"""An exception in one call ends that call only; malformed input gets 400; stress."""

from __future__ import annotations

import pytest
from peers import CARRIER_HOST, FakeUA, Net, established, sdp

from sbc.b2bua.call import Call


def _boom(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError("boom")


def test_exception_before_answer_tears_down_call(
    net: Net, ends: tuple[FakeUA, FakeUA], monkeypatch: pytest.MonkeyPatch
) -> None:
    caller, callee = ends
    a = caller.invite()
    invite = callee.take_request("INVITE")
    with monkeypatch.context() as patch:
        patch.setattr(Call, "_a_response", _boom)
        callee.respond(invite, 180)
    final = caller.take_response(500)
    assert final.from_.tag == a.local_tag
    cancel = callee.take_request("CANCEL")
    callee.respond(cancel, 200)
    callee.respond(invite, 487)
    caller.ack(a)
    assert net.core.stats["call_errors"] == 1
    assert net.core.calls == {}
    assert net.core.dialogs == {}
    _next_call_works(net, caller, callee)
    net.settle()
    assert len(net.core.layer) == 0


def test_exception_in_dialog_tears_down_call(
    net: Net, ends: tuple[FakeUA, FakeUA], monkeypatch: pytest.MonkeyPatch
) -> None:
    caller, callee = ends
    a, _ = established(net, caller, callee)
    with monkeypatch.context() as patch:
        patch.setattr(Call, "_relay_request", _boom)
        caller.request(a, "INFO", body=b"x", headers=[("Content-Type", "text/plain")])
    error = caller.take_response(500, "INFO")
    assert error.call_id == a.call_id
    a_bye = caller.take_request("BYE")
    b_bye = callee.take_request("BYE")
    caller.respond(a_bye, 200)
    callee.respond(b_bye, 200)
    assert net.core.calls == {}
    assert net.core.dialogs == {}
    _next_call_works(net, caller, callee)
    net.settle()
    assert len(net.core.layer) == 0


def _next_call_works(net: Net, caller: FakeUA, callee: FakeUA) -> None:
    caller.clear()
    callee.clear()
    a, _ = established(net, caller, callee)
    caller.request(a, "BYE")
    callee.respond(callee.take_request("BYE"), 200)
    assert caller.take_response(200, "BYE")
    assert net.core.calls == {}


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (b"CSeq: 1 INVITE", b"CSeq: x INVITE", b"CSeq"),
        (b"CSeq: 1 INVITE", b"CSeq: 1 BYE", b"CSeq"),
        (b"Max-Forwards: 70", b"Max-Forwards: abc", b"Max-Forwards"),
        (b"From: <sip:carrier@127.0.0.10>", b"From: <sip:carrier@127.0.0.10", b"From"),
    ],
)
def test_malformed_request_400_with_reason(
    net: Net, old: bytes, new: bytes, problem: bytes
) -> None:
    dlg = net.carrier.invite(send=False)
    assert dlg.invite is not None
    data = dlg.invite.serialize()
    assert old in data
    out = net.deliver_from(net.carrier.source, data.replace(old, new))
    assert len(out) == 1
    status_line = out[0].data.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"SIP/2.0 400 ")
    assert problem.lower() in status_line.lower(), status_line
    assert out[0].target.host == CARRIER_HOST
    assert net.pbx.inbox == []
    assert net.core.calls == {}


def test_garbage_is_dropped(net: Net) -> None:
    assert net.deliver_from(net.carrier.source, b"\x00\xffhello\r\n\r\n") == []
    assert net.deliver_from(net.carrier.source, b"SIP/2.0 200 OK\r\n\r\n") == []


def test_stress_1000_overlapping_calls(net: Net) -> None:
    """Waves of 50 calls set up together, half hung up by each side."""
    carrier, pbx = net.carrier, net.pbx
    for wave in range(20):
        calls = [carrier.invite(body=sdp(carrier.host, port=4000 + 2 * i)) for i in range(50)]
        invites = pbx.requests("INVITE")
        assert len(invites) == 50
        pbx.clear()
        for invite in invites:
            pbx.respond(invite, 180)
            pbx.respond(invite, 200, body=sdp(pbx.host))
        oks = {r.call_id: r for r in carrier.responses(200, "INVITE")}
        assert len(oks) == 50
        carrier.clear()
        for dlg in calls:
            carrier.ack(dlg)
        assert len(pbx.requests("ACK")) == 50
        pbx.clear()
        assert len(net.core.calls) == 50
        net.advance(1.0)
        for i, (dlg, invite) in enumerate(zip(calls, invites, strict=True)):
            if (i + wave) % 2:
                carrier.request(dlg, "BYE")
                pbx.respond(pbx.take_request("BYE"), 200)
            else:
                pbx.request(pbx.dialog_of(invite), "BYE")
                carrier.respond(carrier.take_request("BYE"), 200)
        assert len(carrier.responses(200, "BYE")) + len(pbx.responses(200, "BYE")) == 50
        carrier.clear()
        pbx.clear()
        assert net.core.calls == {}
        net.advance(3.0)
    assert net.core.stats["calls_started"] == 1000
    assert net.core.dialogs == {}
    net.settle()
    assert len(net.core.layer) == 0
    assert net.core.layer.pending_acks == 0
    assert net.core.get_timer() is None
