"""In-dialog trust (issue 11): knowing a dialog's Call-ID and tags is not enough.

An in-dialog request or ACK must come from the leg's peer, and what a peer
says about where to reach it (Contact, Record-Route) may only point at its
own addresses, unless its trunk says otherwise.
"""

from __future__ import annotations

from pathlib import Path

from peers import PBX_HOST, Net, established, policy_copy, sdp
from test_registration_relay import NAT_PORT, make_net, register

from sbc.policy import load_policy
from sbc.sip.message import Response, parse_message
from sbc.sip.target import Target

ATTACKER = "127.0.0.66"
ELSEWHERE = "127.0.0.99"


def _net(tmp_path: Path, carrier: str = "", pbx: str = "") -> Net:
    return Net(load_policy(policy_copy(tmp_path, carrier, pbx)))


def _statuses(net: Net, host: str) -> list[int]:
    out = []
    for target, data in net.log:
        message = parse_message(data)
        if target.host == host and isinstance(message, Response):
            out.append(message.status)
    return out


def test_a_bye_from_a_foreign_source_is_refused_and_the_call_goes_on(net: Net) -> None:
    a, b = established(net, net.carrier, net.pbx)
    forged = net.pbx.request(b, "BYE", send=False)
    net.deliver_from(Target("internal", "udp", ATTACKER, 5060), forged.serialize())
    assert _statuses(net, ATTACKER) == [403]
    assert not net.carrier.requests("BYE")  # the call was not torn down
    assert len(net.core.calls) == 1
    assert net.core.stats["foreign_in_dialog"] == 1
    net.advance(64)
    assert len(net.core.layer) == 0  # refused statelessly
    # The real PBX still hangs up normally.
    net.pbx.request(b, "BYE")
    net.carrier.respond(net.carrier.take_request("BYE"), 200)
    assert net.pbx.take_response(200, "BYE")
    assert net.core.calls == {}
    assert a.call_id  # (the caller's dialog, for the record)


def test_a_foreign_bye_on_the_callers_side_is_refused_too(net: Net) -> None:
    a, _ = established(net, net.carrier, net.pbx)
    forged = net.carrier.request(a, "BYE", send=False)
    net.deliver_from(Target("external", "udp", ATTACKER, 5060), forged.serialize())
    assert _statuses(net, ATTACKER) == [403]
    assert not net.pbx.requests("BYE")
    assert len(net.core.calls) == 1


def test_a_foreign_reinvite_cannot_move_the_media(net: Net) -> None:
    _, b = established(net, net.carrier, net.pbx)
    forged = net.pbx.request(b, "INVITE", body=sdp(ATTACKER, 6000, version=2), send=False)
    net.deliver_from(Target("internal", "udp", ATTACKER, 5060), forged.serialize())
    assert _statuses(net, ATTACKER) == [403]
    assert not net.carrier.requests("INVITE")


def test_a_foreign_ack_cannot_answer_a_late_offer(net: Net) -> None:
    """The caller's ACK carries the answer (RFC 3264 §4): a forged one first
    would point the callee's media at the attacker."""
    a = net.carrier.invite(body=b"")
    invite = net.pbx.take_request("INVITE")
    net.pbx.respond(invite, 200, body=sdp(PBX_HOST))
    net.carrier.take_response(200, "INVITE")
    forged = net.carrier.request(a, "ACK", body=sdp(ATTACKER), cseq=1, send=False)
    net.deliver_from(Target("external", "udp", ATTACKER, 5060), forged.serialize())
    assert _statuses(net, ATTACKER) == []  # an ACK is never answered
    assert net.core.stats["foreign_in_dialog"] == 1
    assert not net.pbx.requests("ACK")
    net.carrier.ack(a, body=sdp("127.0.0.10", version=2))
    ack = net.pbx.take_request("ACK")
    assert ATTACKER.encode() not in ack.body


def test_an_ack_on_the_other_interface_is_not_the_callers(net: Net) -> None:
    """Matching a 2xx still awaiting its ACK (RFC 3261 §13.3.1.4) is not enough either."""
    a = net.carrier.invite(body=b"")
    invite = net.pbx.take_request("INVITE")
    net.pbx.respond(invite, 200, body=sdp(PBX_HOST))
    net.carrier.take_response(200, "INVITE")
    forged = net.carrier.request(a, "ACK", body=sdp(ATTACKER), cseq=1, send=False)
    net.deliver_from(Target("internal", "udp", ATTACKER, 5060), forged.serialize())
    assert not net.pbx.requests("ACK")
    net.carrier.ack(a, body=sdp("127.0.0.10", version=2))
    assert ATTACKER.encode() not in net.pbx.take_request("ACK").body


def test_the_peer_may_use_another_source_port(net: Net) -> None:
    """Trunks are known by address, on any source port (docs/policies.md)."""
    _, b = established(net, net.carrier, net.pbx)
    bye = net.pbx.request(b, "BYE", send=False)
    net.deliver_from(Target("internal", "udp", PBX_HOST, 40000), bye.serialize())
    assert net.carrier.take_request("BYE")


def test_a_trunks_other_sources_are_the_trunk(tmp_path: Path) -> None:
    net = _net(tmp_path, pbx="    sources: [127.0.0.64/30]\n")
    _, b = established(net, net.carrier, net.pbx)
    bye = net.pbx.request(b, "BYE", send=False)
    net.deliver_from(Target("internal", "udp", "127.0.0.65", 5060), bye.serialize())
    assert net.carrier.take_request("BYE")


def test_a_peer_that_may_move_is_heard_from_anywhere(tmp_path: Path) -> None:
    net = _net(tmp_path, pbx="    peer_may_move: true\n")
    _, b = established(net, net.carrier, net.pbx)
    bye = net.pbx.request(b, "BYE", send=False)
    net.deliver_from(Target("internal", "udp", ATTACKER, 5060), bye.serialize())
    assert _statuses(net, ATTACKER) == [200]
    assert net.carrier.take_request("BYE")


def _answer_pointing_elsewhere(net: Net, *, record_route: bool) -> None:
    """A call whose callee's 200 names a third address in Contact (and Record-Route)."""
    a = net.carrier.invite()
    invite = net.pbx.take_request("INVITE")
    headers = [("Record-Route", f"<sip:{ELSEWHERE}:5070;lr>")] if record_route else []
    ok = net.pbx.respond(invite, 200, body=sdp(PBX_HOST), headers=headers, send=False)
    data = ok.serialize().replace(
        f"<sip:pbx@{PBX_HOST}:5060>".encode(), f"<sip:pbx@{ELSEWHERE}:5099>".encode()
    )
    net.deliver(net.pbx, data)
    net.carrier.take_response(200, "INVITE")
    net.carrier.ack(a)
    net.carrier.request(a, "BYE")


def test_a_record_route_to_a_third_address_is_not_followed(net: Net) -> None:
    _answer_pointing_elsewhere(net, record_route=True)
    assert not [t for t, _ in net.log if t.host == ELSEWHERE]
    ack = net.pbx.take_request("ACK")
    bye = net.pbx.take_request("BYE")
    assert [t.host for t in net.pbx.targets[-2:]] == [PBX_HOST, PBX_HOST]
    assert str(bye.uri) == f"sip:pbx@{ELSEWHERE}:5099"  # the remote target, as RFC 3261 says
    assert ack.headers.get("Route") == f"<sip:{ELSEWHERE}:5070;lr>"


def test_a_contact_to_a_third_address_is_not_followed(net: Net) -> None:
    _answer_pointing_elsewhere(net, record_route=False)
    assert not [t for t, _ in net.log if t.host == ELSEWHERE]
    assert net.pbx.take_request("ACK")
    assert net.pbx.take_request("BYE")


def test_a_trunk_that_is_trusted_with_routes_gets_them_followed(tmp_path: Path) -> None:
    net = _net(tmp_path, pbx="    trust_route: true\n")
    _answer_pointing_elsewhere(net, record_route=True)
    hops = [t for t, data in net.log if t.host == ELSEWHERE]
    assert [t.port for t in hops] == [5070, 5070]  # the ACK and the BYE, to the route
    assert not net.pbx.requests("BYE")


def test_a_route_at_the_peers_own_address_is_followed(net: Net) -> None:
    a = net.carrier.invite()
    invite = net.pbx.take_request("INVITE")
    headers = [("Record-Route", f"<sip:{PBX_HOST}:5070;lr>")]
    net.pbx.respond(invite, 200, body=sdp(PBX_HOST), headers=headers)
    net.carrier.take_response(200, "INVITE")
    net.carrier.ack(a)
    assert net.pbx.take_request("ACK")
    assert net.pbx.targets[-1].port == 5070  # its own address: another port is its business


def test_a_registered_phone_is_heard_only_from_its_flow(tmp_path: Path) -> None:
    net, phone = make_net(tmp_path)
    register(net, phone, 1)
    upstream = net.carrier.take_request("REGISTER")
    net.carrier.respond(upstream, 200)
    phone.take_response(200)
    net.pbx.invite("alice")
    invite = phone.take_request("INVITE")
    flow = Target("external", "udp", phone.host, NAT_PORT)
    ok = phone.respond(invite, 200, body=sdp(phone.host), send=False)
    net.deliver_from(flow, ok.serialize())
    net.pbx.ack(net.pbx.dialogs[net.pbx.take_response(200, "INVITE").call_id])
    dlg = phone.dialog_of(invite)
    # Same address, another port: another phone behind the same NAT.
    bye = phone.request(dlg, "BYE", send=False)
    net.deliver_from(Target("external", "udp", phone.host, 5060), bye.serialize())
    assert not net.pbx.requests("BYE")
    assert net.core.stats["foreign_in_dialog"] == 1
    net.deliver_from(flow, phone.request(dlg, "BYE", send=False).serialize())
    assert net.pbx.take_request("BYE")
