"""Reliable provisionals (RFC 3262) and requests the SBC answers itself."""

from __future__ import annotations

import pytest
from peers import CARRIER_HOST, Dlg, FakeUA, Net, established, sdp

from sbc.sip.target import Target

REL = [("Require", "100rel"), ("RSeq", "77")]


def test_b_leg_reliable_180_is_pracked(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    caller.invite()  # no 100rel support
    invite = callee.take_request("INVITE")
    assert "100rel" in invite.option_tags("Supported")
    callee.respond(invite, 180, headers=REL)
    prack = callee.take_request("PRACK")
    assert prack.headers.get("RAck") == f"77 {invite.cseq.seq} INVITE"
    assert prack.call_id == invite.call_id
    assert prack.to.tag == callee.dialog_of(invite).local_tag
    callee.respond(prack, 200)
    ringing = caller.take_response(180)
    assert "RSeq" not in ringing.headers
    assert "100rel" not in ringing.option_tags("Require")
    assert caller.requests("PRACK") == []  # our PRACK's 200 does not cross


def test_a_leg_gets_reliable_180_until_prack(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, callee = ends
    a = caller.invite(headers=[("Supported", "100rel")])
    invite = callee.take_request("INVITE")
    callee.respond(invite, 180, headers=REL)
    callee.respond(callee.take_request("PRACK"), 200)
    ringing = caller.take_response(180)
    assert "100rel" in ringing.option_tags("Require")
    rseq = ringing.headers.get("RSeq")
    assert rseq is not None
    assert rseq == "1"  # our own sequence, independent of the callee's 77
    net.advance(0.5)
    assert len(caller.responses(180)) == 1  # retransmitted after T1
    net.advance(1.0)
    assert len(caller.responses(180)) == 2  # then 2*T1
    caller.clear()
    a.remote_tag = ringing.to.tag
    a.remote_target = str(ringing.contacts[0].uri)
    prack = caller.request(a, "PRACK", headers=[("RAck", f"{rseq} 1 INVITE")])
    assert caller.take_response(200, "PRACK").cseq.seq == prack.cseq.seq
    assert callee.requests("PRACK") == []
    net.advance(10)
    assert caller.responses(180) == []  # no more retransmissions
    callee.respond(invite, 200, body=sdp(callee.host))
    assert caller.take_response(200, "INVITE")


def test_a_leg_prack_with_wrong_rseq_481(net: Net) -> None:
    a = net.carrier.invite(headers=[("Supported", "100rel")])
    invite = net.pbx.take_request("INVITE")
    net.pbx.respond(invite, 180, headers=REL)
    ringing = net.carrier.take_response(180)
    a.remote_tag = ringing.to.tag
    net.carrier.request(a, "PRACK", headers=[("RAck", "999 1 INVITE")])
    assert net.carrier.take_response(481, "PRACK")


def test_options_to_sbc(net: Net, ends: tuple[FakeUA, FakeUA]) -> None:
    caller, _ = ends
    dlg = caller.invite(send=False)
    dlg.remote_target = f"sip:{caller.sbc_host}:5060"
    caller.request(dlg, "OPTIONS")
    ok = caller.take_response(200, "OPTIONS")
    assert "INVITE" in (ok.headers.get("Allow") or "")
    assert net.core.calls == {}
    net.settle()
    assert len(net.core.layer) == 0


STRANGER = Target("external", "udp", "198.51.100.66", 5060)


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_unknown_source_403(net: Net, method: str) -> None:
    dlg = net.carrier.invite(send=False)
    if method == "INVITE":
        data = dlg.invite.serialize() if dlg.invite else b""
    else:
        data = net.carrier.request(dlg, "OPTIONS", send=False).serialize()
    data = data.replace(CARRIER_HOST.encode(), b"198.51.100.66")
    out = net.deliver_from(STRANGER, data)
    statuses = [line.split(b"\r\n")[0] for line in (t.data for t in out)]
    assert any(s.startswith(b"SIP/2.0 403") for s in statuses), statuses
    assert all(t.target.host == "198.51.100.66" for t in out)
    assert [s[:12] for s in statuses] == [b"SIP/2.0 403 "]  # no 100 Trying either
    assert net.pbx.inbox == []
    assert net.core.calls == {}
    assert len(net.core.layer) == 0  # stateless: scanners cost no transaction


def test_max_forwards_zero_483(net: Net) -> None:
    dlg = net.carrier.invite(send=False)
    assert dlg.invite is not None
    net.deliver(net.carrier, _with(dlg.invite.serialize(), b"Max-Forwards: 70", b"Max-Forwards: 0"))
    assert net.carrier.take_response(483)
    assert net.pbx.inbox == []


def test_require_unknown_420(net: Net) -> None:
    net.carrier.invite(headers=[("Require", "foo, 100rel")])
    bad = net.carrier.take_response(420)
    assert bad.headers.get("Unsupported") == "foo"
    assert net.pbx.inbox == []


def test_session_expires_below_min_se_422(net: Net) -> None:
    net.carrier.invite(headers=[("Session-Expires", "60"), ("Supported", "timer")])
    bad = net.carrier.take_response(422)
    assert bad.headers.get("Min-SE") == str(net.core.config.min_se)
    assert net.pbx.inbox == []


def test_draining_503_retry_after(net: Net) -> None:
    a, _ = _call(net)
    net.core.begin_drain()
    net.carrier.invite()
    bad = net.carrier.take_response(503)
    assert bad.headers.get("Retry-After")
    assert net.pbx.requests("INVITE") == []
    # The established call goes on.
    net.carrier.request(a, "BYE")
    assert net.pbx.take_request("BYE")


def test_overload_sheds_new_calls_only(net: Net) -> None:
    a, _ = _call(net)
    net.core.overloaded = True
    net.carrier.invite()
    shed = net.carrier.take_response(503)
    assert shed.reason == "Overloaded"
    assert shed.headers.get("Retry-After") == "5"
    assert net.pbx.requests("INVITE") == []
    # In-dialog requests are still served while new calls are shed.
    net.carrier.request(a, "BYE")
    assert net.pbx.take_request("BYE")
    net.core.overloaded = False
    net.carrier.invite()
    assert net.pbx.take_request("INVITE")


def _call(net: Net) -> tuple[Dlg, Dlg]:
    return established(net, net.carrier, net.pbx)


def _with(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new)


def test_options_while_draining_say_503(net: Net) -> None:
    dlg = net.carrier.invite(send=False)
    net.core.begin_drain()
    net.carrier.request(dlg, "OPTIONS")
    refused = net.carrier.take_response(503)
    assert refused.headers.get("Retry-After") == "30"
