"""Signalling NAT: a peer whose Contact names an unreachable address is
reached at its observed source instead."""

from __future__ import annotations

from peers import Net, sdp

UNREACHABLE = b"<sip:carrier@127.0.0.99:5099>"


def test_natted_caller_gets_in_dialog_requests_at_its_source(net: Net) -> None:
    dlg = net.carrier.invite(send=False)
    assert dlg.invite is not None
    data = dlg.invite.serialize().replace(b"<sip:carrier@127.0.0.10:5060>", UNREACHABLE)
    assert UNREACHABLE in data
    net.deliver(net.carrier, data)
    invite = net.pbx.take_request("INVITE")
    net.pbx.respond(invite, 200, body=sdp("127.0.0.20"))
    net.carrier.take_response(200, "INVITE")
    net.carrier.ack(dlg)
    net.pbx.take_request("ACK")
    net.pbx.request(net.pbx.dialog_of(invite), "BYE")
    assert net.carrier.take_request("BYE")  # not sent to 127.0.0.99
    assert not [t for t, _ in net.log if t.host == "127.0.0.99"]
