"""Refusals leave no state and are never an amplifier (issue 11, reflection).

A request the core refuses before any call or registration exists is
answered once, statelessly: no server transaction (so no Timer G
retransmissions of a 481 for 32 s), and over UDP never more bytes than the
request had.
"""

from __future__ import annotations

import pytest
from peers import Net, established

from sbc.sip.message import Response, parse_message
from sbc.sip.target import Target
from sbc.sip.transaction import Transmit

STRANGER = "127.0.0.66"


def _request(
    method: str,
    *,
    host: str = STRANGER,
    to_tag: str | None = "nosuchdialog",
    vias: int = 1,
    compact: bool = False,
    call_id: str = "attack-1",
    body: str = "",
    contact: bool = False,
) -> bytes:
    """A request as an attacker writes it: ``vias`` padded Via lines, compact names."""
    via, from_, to, cid = ("v", "f", "t", "i") if compact else ("Via", "From", "To", "Call-ID")
    sep = ":" if compact else ": "
    lines = [f"{method} sip:1000@127.0.0.1 SIP/2.0"]
    lines += [f"{via}{sep}SIP/2.0/UDP {host}:5060;branch=z9hG4bK-r{n}" for n in range(vias)]
    lines += [
        f"{from_}{sep}<sip:a@{host}>;tag=x",
        f"{to}{sep}<sip:1000@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
        f"{cid}{sep}{call_id}",
        f"CSeq{sep}1 {method}",
    ]
    if not compact:
        lines.append("Max-Forwards: 70")
    if contact:  # as any user agent's request has
        lines += [f"Contact: <sip:a@{host}:5060>", "Accept: application/sdp"]
    if body:
        lines += ["Content-Type: text/plain", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _answers(out: list[Transmit]) -> list[Response]:
    parsed = [parse_message(t.data) for t in out]
    return [m for m in parsed if isinstance(m, Response)]


def _sent_to(net: Net, host: str) -> list[bytes]:
    return [data for target, data in net.log if target.host == host]


@pytest.mark.parametrize("method", ["INVITE", "BYE", "UPDATE", "INFO"])
def test_unknown_to_tag_gets_one_stateless_481(net: Net, method: str) -> None:
    source = Target("external", "udp", STRANGER, 5060)
    out = net.deliver_from(source, _request(method))
    answers = _answers(out)
    assert [a.status for a in answers] == [481]  # not a 100 Trying first, either
    assert len(net.core.layer) == 0  # no transaction kept for it
    net.advance(64)  # Timer G would have resent it 10 times in 32 s
    assert len(_sent_to(net, STRANGER)) == 1
    assert len(net.core.layer) == 0
    assert net.core.stats["unknown_dialog"] == 1


def test_unknown_to_tag_from_a_trunk_is_answered_once_too(net: Net) -> None:
    out = net.deliver_from(net.carrier.source, _request("INVITE", host="127.0.0.10"))
    assert [a.status for a in _answers(out)] == [481]
    assert len(net.core.layer) == 0
    net.advance(64)
    assert len(net.carrier.responses(481)) == 1


def test_ack_for_an_unknown_dialog_is_dropped_silently(net: Net) -> None:
    out = net.deliver_from(Target("external", "udp", STRANGER, 5060), _request("ACK"))
    assert out == []
    assert len(net.core.layer) == 0


@pytest.mark.parametrize(("method", "status"), [("BYE", 481), ("NOTIFY", 481), ("MESSAGE", 405)])
def test_out_of_dialog_refusals_leave_no_transaction(net: Net, method: str, status: int) -> None:
    text = "A message as a trunk would send it, with some text in it. " * 2
    data = _request(method, host="127.0.0.10", to_tag=None, body=text)
    out = net.deliver_from(net.carrier.source, data)
    answers = _answers(out)
    assert [a.status for a in answers] == [status]
    assert answers[0].to.tag  # RFC 3261 §8.2.6.2: a tag is added
    if status == 405:
        assert answers[0].headers.get("Allow")  # RFC 3261 §21.4.6
    assert len(net.core.layer) == 0


def test_known_dialogs_still_get_their_answers(net: Net) -> None:
    a, _ = established(net, net.carrier, net.pbx)
    net.carrier.request(a, "BYE")
    net.pbx.respond(net.pbx.take_request("BYE"), 200)
    assert net.carrier.take_response(200, "BYE")
    net.carrier.request(a, "BYE")  # the call is gone now: a new BYE is for no dialog
    assert net.carrier.take_response(481, "BYE")


@pytest.mark.parametrize(
    ("method", "to_tag", "status"),
    [
        ("INVITE", None, 403),  # a stranger out of dialog
        ("OPTIONS", None, 403),
        ("BYE", "nosuchdialog", 481),  # a stranger naming no dialog
        ("INVITE", "nosuchdialog", 481),
    ],
)
@pytest.mark.parametrize("vias", [1, 40])
def test_a_refusal_to_a_stranger_is_never_larger_than_the_request(
    net: Net, method: str, to_tag: str | None, status: int, vias: int
) -> None:
    """Compact header names and no Max-Forwards make the request as small as
    it can be for what the answer must echo (RFC 3261 §8.2.6.2)."""
    data = _request(method, to_tag=to_tag, vias=vias, compact=True)
    out = net.deliver_from(Target("external", "udp", STRANGER, 5060), data)
    for transmit in out:
        assert len(transmit.data) <= len(data), transmit.data
        answer = parse_message(transmit.data)
        assert isinstance(answer, Response)
        assert answer.status == status
        assert len(answer.vias) == vias  # every Via echoed, none dropped
    sent = len(out)
    assert sent + net.core.stats["refusals_suppressed"] == 1
    assert len(net.core.layer) == 0


def test_an_ordinary_refusal_keeps_its_reason_phrase(net: Net) -> None:
    data = _request("OPTIONS", to_tag=None, contact=True)
    (transmit,) = net.deliver_from(Target("external", "udp", STRANGER, 5060), data)
    answer = parse_message(transmit.data)
    assert isinstance(answer, Response)
    assert (answer.status, answer.reason) == (403, "Forbidden")
    assert net.core.stats["refusals_trimmed"] == 0


def test_a_refusal_over_a_connection_is_not_trimmed(net: Net) -> None:
    """A TCP source proved its address in the handshake: nothing is reflected."""
    data = _request("OPTIONS", to_tag=None, vias=20, compact=True)
    (transmit,) = net.deliver_from(Target("external", "tcp", STRANGER, 40000, 7), data)
    answer = parse_message(transmit.data)
    assert isinstance(answer, Response)
    assert (answer.status, answer.reason) == (403, "Forbidden")
    assert len(transmit.data) > len(data)


def test_a_400_to_a_stranger_is_bounded_too(net: Net) -> None:
    data = _request("OPTIONS", to_tag=None, vias=30, compact=True).replace(
        b"CSeq:1 OPTIONS", b"CSeq:x OPTIONS"
    )
    out = net.deliver_from(Target("external", "udp", STRANGER, 5060), data)
    assert all(len(t.data) <= len(data) for t in out)
    assert net.core.stats["parse_errors"] == 1


def test_a_trimmed_400_keeps_as_much_of_its_reason_as_fits(net: Net) -> None:
    data = _request("OPTIONS", to_tag=None).replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS")
    (transmit,) = net.deliver_from(Target("external", "udp", STRANGER, 5060), data)
    assert len(transmit.data) <= len(data)
    status_line = transmit.data.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"SIP/2.0 400 Bad Request (invalid CSeq"), status_line
    assert net.core.stats["refusals_trimmed"] == 1
