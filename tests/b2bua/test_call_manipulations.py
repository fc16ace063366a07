"""The demo's manipulations.yaml as the far ends see it: inbound rules shape
what routing and the other leg get, outbound rules what leaves toward a
trunk, and the leg that sent a message still gets answers that echo it."""

from __future__ import annotations

from peers import Net, headers_text, sdp


def test_carrier_e164_arrives_national_and_answers_echo_the_original(net: Net) -> None:
    a = net.carrier.invite(
        "+12125550123", headers=[("X-Carrier-Trace", "abc"), ("Subject", "hello")]
    )
    invite = net.pbx.take_request("INVITE")
    assert invite.uri.user == "2125550123"  # type: ignore[union-attr]
    assert invite.to.uri.user == "2125550123"  # type: ignore[union-attr]
    assert "X-Carrier-Trace" not in invite.headers
    assert invite.headers.get("Subject") == "hello"
    net.pbx.respond(invite, 200, body=sdp(net.pbx.host))
    ok = net.carrier.take_response(200)
    # RFC 3261 §8.2.6.2: the caller's own From/To come back as it sent them.
    assert ok.to.uri.user == "+12125550123"  # type: ignore[union-attr]
    assert ok.from_.tag == a.local_tag
    net.carrier.ack(a)
    net.carrier.request(a, "BYE")
    net.pbx.respond(net.pbx.take_request("BYE"), 200)
    assert net.carrier.take_response(200, "BYE")


def test_pbx_identity_is_replaced_by_an_asserted_e164_one(net: Net) -> None:
    net.pbx.clear()
    a = net.pbx.invite(
        "2125550199",
        headers=[
            ("P-Asserted-Identity", "<sip:boss@10.9.9.9>"),
            ("X-Call-Forwarded", "yes"),
        ],
    )
    invite = net.carrier.take_request("INVITE")
    assert invite.uri.user == "+12125550199"  # type: ignore[union-attr]
    text = headers_text(invite)
    assert "boss" not in text
    assert "10.9.9.9" not in text
    assert "X-Call-Forwarded" not in text
    assert invite.headers.get("Diversion") is not None  # added from the PBX's marker
    net.carrier.respond(invite, 486)
    busy = net.pbx.take_response(486)
    assert busy.call_id == a.call_id


def test_cancel_carries_the_invite_as_sent(net: Net) -> None:
    a = net.pbx.invite("2125550100")
    invite = net.carrier.take_request("INVITE")
    net.carrier.respond(invite, 180)
    net.pbx.cancel(a)
    cancel = net.carrier.take_request("CANCEL")
    assert str(cancel.uri) == str(invite.uri)  # RFC 3261 §9.1
    assert cancel.headers.get("From") == invite.headers.get("From")
    assert cancel.headers.get("To") == invite.headers.get("To")
    assert "P-Asserted-Identity" not in cancel.headers
